"""JSON: arenas and their leaderboards."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from app.arena import leaderboard, service
from app.arena.schemas import ArenaIn, ArenaOut, LeaderboardOut
from app.auth.deps import AdminUser
from app.export.deps import ExportAccessDep
from app.kit.errors import Forbidden, NotFound
from app.kit.schemas import error_responses
from app.models import Project
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, get_database

router = APIRouter(tags=["arena"])


@router.post(
    "/projects/{project}/arenas", response_model=ArenaOut, status_code=201, responses=error_responses(404, 422)
)
def create_arena(project: AdminProjectDep, data: ArenaIn, session: SessionDep, user: AdminUser) -> ArenaOut:
    """Make an arena of 2–4 registered models on held-out prompts and queue its generation (one answer per model)."""
    arena, _ = service.create_arena(session, parent=project, data=data, user=user)
    return leaderboard.overview(session, arena=arena, parent=project)


@router.get("/projects/{project}/arenas", response_model=list[ArenaOut])
def list_arenas(request: Request, project: AdminProjectDep, session: SessionDep) -> list[ArenaOut]:
    """The project's arenas with their state (generating, annotating, decided, failed)."""
    service.open_finished(get_database(request), parent_id=project.id)
    session.rollback()  # end the read transaction: its snapshot (SQLite) predates the opening
    return [leaderboard.overview(session, arena=a, parent=project) for a in service.arenas_of(session, parent=project)]


def arena_and_parent(session: Session, slug: str) -> tuple[Project, Project]:
    """The arena named ``slug`` and its parent project (404 for a project that is not an arena)."""
    arena = service.arena_named(session, slug=slug)
    parent = session.get(Project, arena.parent_id)
    if parent is None:
        raise NotFound("No such arena")
    return arena, parent


@router.get("/projects/{project}/leaderboard", response_model=LeaderboardOut, responses=error_responses(401, 403, 404))
def get_leaderboard(project: str, request: Request, access: ExportAccessDep, session: SessionDep) -> LeaderboardOut:
    """An arena's figures per dimension: win/tie/loss and win rate per model pair, Bradley–Terry ratings with
    intervals, and whether the top pair is decided. Admins, or an export token of the arena or its parent."""
    arena, parent = arena_and_parent(session, project)
    if access.token is not None and access.token.project_id not in (arena.id, parent.id):
        raise Forbidden("This token is not valid for this project")
    service.open_finished(get_database(request), parent_id=parent.id)
    session.rollback()  # end the read transaction: its snapshot (SQLite) predates the opening
    return leaderboard.leaderboard(session, arena=arena, parent=parent)
