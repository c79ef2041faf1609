"""HTML: arenas — blind evaluations of registered models, and their leaderboards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.arena import leaderboard, service
from app.arena.api import arena_and_parent
from app.arena.schemas import ArenaIn
from app.auth.deps import AdminUser
from app.kit.errors import AppError, NotFound
from app.kit.forms import FormModel, form_of
from app.kit.htmx import redirect, render
from app.models import Project
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, get_database

router = APIRouter(tags=["arena pages"], include_in_schema=False)


class ArenaForm(FormModel):
    name: str = ""
    model_ids: list[str] = []
    overlap: str = "3"
    source: str = "snapshot"
    snapshot_id: str = ""
    prompts: str = ""


def _message(exc: AppError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    detail = exc.detail
    if isinstance(detail, dict):
        lines = [f"line {e['line']}: {e['error']}" for e in detail.get("errors", [])]
        return " ".join([str(detail.get("message", "")), *lines])
    return str(detail)


def _context(request: Request, session: Session, project: Project, **extra: Any) -> dict[str, Any]:
    arenas = service.arenas_of(session, parent=project)
    return {
        "request": request,
        "project": project,
        "arenas": [leaderboard.overview(session, arena=a, parent=project) for a in arenas],
        "models": service.served_models(session, parent=project),
        "snapshots": service.ready_snapshots(session, parent=project),
        "values": extra.pop("values", None) or ArenaForm(),
        **extra,
    }


@router.get("/projects/{project}/arenas")
def arenas_page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The project's arenas with their state, and the form that makes one."""
    service.open_finished(get_database(request), parent_id=project.id)
    session.rollback()  # end the read transaction: its snapshot (SQLite) predates the opening
    return render(request, "arena/list.html", _context(request, session, project))


@router.post("/projects/{project}/arenas")
def create_arena(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    user: AdminUser,
    form: Annotated[ArenaForm, form_of(ArenaForm)],
) -> Response:
    """Make an arena from the form; a mistake shows the form again with what is wrong."""
    imported = form.source == "imported"
    try:
        data = ArenaIn(
            name=form.name,
            model_ids=[int(i) for i in form.model_ids if i.isdigit()],
            overlap=int(form.overlap) if form.overlap.isdigit() else 0,
            snapshot_id=None if imported or not form.snapshot_id.isdigit() else int(form.snapshot_id),
            prompts=form.prompts if imported else None,
        )
        service.create_arena(session, parent=project, data=data, user=user)
    except (AppError, ValidationError) as exc:
        session.rollback()
        context = _context(request, session, project, values=form, error=_message(exc))
        return render(request, "arena/list.html", context, status_code=422)
    return redirect(request, f"/projects/{project.slug}/arenas")


@router.get("/projects/{project}/leaderboard")
def leaderboard_page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """An arena's leaderboard: ratings, pairs and whether it is decided, per dimension (admins see model names)."""
    if project.kind != "arena":
        raise NotFound("No such arena")
    arena, parent = arena_and_parent(session, project.slug)
    service.open_finished(get_database(request), parent_id=parent.id)
    session.rollback()
    board = leaderboard.leaderboard(session, arena=arena, parent=parent)
    overview = leaderboard.overview(session, arena=arena, parent=parent)
    return render(
        request,
        "arena/leaderboard.html",
        {"request": request, "project": arena, "parent": parent, "board": board, "overview": overview},
    )
