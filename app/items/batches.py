"""Import batches: the imports of a project, newest first (the explorer's batch filter lists them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ImportBatch, Project

MAX_LISTED = 500  # the explorer's select; the JSON list pages with ``before``


def list_batches(
    session: Session, *, project: Project, before: int | None = None, limit: int = MAX_LISTED
) -> list[ImportBatch]:
    """The project's import batches, newest first (keyset: ids below ``before``)."""
    query = select(ImportBatch).where(ImportBatch.project_id == project.id)
    if before is not None:
        query = query.where(ImportBatch.id < before)
    return list(session.scalars(query.order_by(ImportBatch.id.desc()).limit(limit)))


def batch_choices(session: Session, *, project: Project, chosen: int | None) -> list[ImportBatch]:
    """The batches the explorer's select offers: the newest MAX_LISTED, and the chosen one if it is older."""
    batches = list_batches(session, project=project)
    if chosen is not None and all(b.id != chosen for b in batches):
        older = session.get(ImportBatch, chosen)
        if older is not None and older.project_id == project.id:
            batches.append(older)
    return batches
