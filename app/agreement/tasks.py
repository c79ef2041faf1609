"""Background work: keep every project's cached agreement figures fresh (run by ``prefstudio worker``)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.agreement.cache import stale_mark, store, timed_compute
from app.db import Database
from app.models import Project

log = logging.getLogger("prefstudio.agreement")


def refresh_stale_figures(db: Database) -> list[str]:
    """Recompute the cached figures of every project whose fingerprint moved; returns their slugs.

    The computation reads in its own session and the result is written in a short one afterwards, so on
    SQLite the write lock is held for the upsert only, never while the statistics run.
    """
    with db.session(write=False) as session:
        project_ids = list(session.scalars(select(Project.id).order_by(Project.id)))
    refreshed = []
    for project_id in project_ids:
        try:
            with db.session(write=False) as session:
                project = session.get(Project, project_id)
                mark = stale_mark(session, project=project) if project is not None else None
                if project is None or mark is None:
                    continue
                slug = project.slug
                figures, ms = timed_compute(session, project=project)
            with db.session() as session:
                store(session, project_id=project_id, figures=figures, source=mark.source, compute_ms=ms)
        except Exception:  # one project's failure must not stop the others, nor the worker
            log.exception("agreement figures of project %s could not be refreshed", project_id)
            continue
        log.info("agreement figures of %s refreshed in %.0f ms", slug, ms)
        refreshed.append(slug)
    return refreshed
