"""The registry's queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Project, RegisteredModel, Snapshot


def models_of(session: Session, project: Project) -> list[RegisteredModel]:
    """A project's models, oldest first."""
    query = select(RegisteredModel).where(RegisteredModel.project_id == project.id)
    return list(session.scalars(query.order_by(RegisteredModel.id)))


def model_by_id(session: Session, project: Project, model_id: int) -> RegisteredModel | None:
    query = select(RegisteredModel).where(RegisteredModel.project_id == project.id, RegisteredModel.id == model_id)
    return session.scalar(query)


def model_by_name(session: Session, project: Project, name: str) -> RegisteredModel | None:
    query = select(RegisteredModel).where(RegisteredModel.project_id == project.id, RegisteredModel.name == name)
    return session.scalar(query)


def model_by_uri(session: Session, project: Project, uri: str) -> RegisteredModel | None:
    """The oldest model of the project with this uri (a base model registered twice: the first is its parent)."""
    query = select(RegisteredModel).where(RegisteredModel.project_id == project.id, RegisteredModel.uri == uri)
    return session.scalar(query.order_by(RegisteredModel.id).limit(1))


def names_of(session: Session, project: Project) -> set[str]:
    query = select(RegisteredModel.name).where(RegisteredModel.project_id == project.id)
    return set(session.scalars(query))


def arenas_listing(session: Session, project: Project, model_id: int) -> list[Project]:
    """The project's arenas whose settings list this model."""
    query = select(Project).where(Project.parent_id == project.id, Project.kind == "arena")
    return [a for a in session.scalars(query) if model_id in ((a.arena or {}).get("model_ids") or [])]


def ready_snapshots(session: Session, project: Project) -> list[Snapshot]:
    """The project's ready snapshots, newest first (what a model added by hand may say it was trained on)."""
    query = select(Snapshot).where(Snapshot.project_id == project.id, Snapshot.state == "ready")
    return list(session.scalars(query.order_by(Snapshot.id.desc())))
