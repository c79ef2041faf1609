"""Project lookup with the access rule: admins see every project, annotators only their own.

A project the user may not see is reported as 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.deps import AdminUser, CurrentUser
from app.kit.errors import NotFound
from app.models import Project, ProjectMember, User
from app.projects.service import remember_membership
from app.web.deps import SessionDep


def project_by_slug(session: Session, slug: str) -> Project:
    """A project by slug (command line and jobs: no user to check)."""
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        raise NotFound(f"No project {slug!r}")
    return project


def project_for_user(session: Session, *, slug: str, user: User) -> Project:
    """The project if ``user`` may see it, else NotFound. Their membership (paused or not, or none) is kept in
    the session (``app.projects.service.is_paused``): next-item needs it again."""
    row = (
        session.execute(
            select(Project, ProjectMember.paused)
            .outerjoin(ProjectMember, (ProjectMember.project_id == Project.id) & (ProjectMember.user_id == user.id))
            .where(Project.slug == slug)
        )
        .tuples()
        .first()
    )
    if row is None:
        raise NotFound("No such project")
    project, paused = row
    if paused is None and not user.is_admin:
        raise NotFound("No such project")
    remember_membership(session, project_id=project.id, user_id=user.id, paused=paused)
    return project


def get_project_for_user(project: str, session: SessionDep, user: CurrentUser) -> Project:
    return project_for_user(session, slug=project, user=user)


def get_project_for_admin(project: str, session: SessionDep, user: AdminUser) -> Project:
    return project_for_user(session, slug=project, user=user)


ProjectDep = Annotated[Project, Depends(get_project_for_user)]
AdminProjectDep = Annotated[Project, Depends(get_project_for_admin)]
