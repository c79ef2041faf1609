"""HTML: the adjudication queue, the decided cases, and one case with every judgment side by side, whose form
opens pre-filled and moves on to the next open case once decided."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.adjudication import service, stream
from app.adjudication.schemas import DecisionForm
from app.auth.deps import AdminUser
from app.kit.forms import form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["adjudication pages"], include_in_schema=False)


@router.get("/projects/{project}/adjudication")
def queue_page(request: Request, project: AdminProjectDep, session: SessionDep, decided: int | None = None) -> Response:
    """Items waiting for a decision, closest votes first (``decided``: the case just decided, for the notice)."""
    entries = service.queue(session, project=project)
    return render(
        request,
        "adjudication/queue.html",
        {"request": request, "project": project, "entries": entries, "just_decided": decided, "tab": "open"},
    )


@router.get("/projects/{project}/adjudication/decided")
def decided_page(
    request: Request, project: AdminProjectDep, session: SessionDep, before: int | None = Query(default=None, ge=1)
) -> Response:
    """Past decisions, newest first: item, who, when, reason, outcome; each re-opens with its stored values."""
    entries, next_before = stream.decided(session, project=project, before=before)
    return render(
        request,
        "adjudication/decided.html",
        {"request": request, "project": project, "entries": entries, "next_before": next_before, "tab": "decided"},
    )


@router.get("/projects/{project}/adjudication/{item_id}")
def case_page(
    item_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep, decided: int | None = None
) -> Response:
    """One item: candidates, every judgment (who, what, reason, time), the decision form pre-filled with the stored
    decision or else the majority (``decided``: the case decided just before, for the notice)."""
    view = stream.case_view(session, project=project, item_id=item_id)
    position = {c.id: view.letters[c.id] for c in view.candidates}
    return render(
        request,
        "adjudication/case.html",
        {
            "request": request,
            "project": project,
            "view": view,
            "item": view.item,
            "candidates": view.candidates,
            "judgments": view.judgments,
            "decision": view.decision,
            "position": position,
            "dimensions": view.dimensions,
            "just_decided": decided,
        },
    )


@router.post("/projects/{project}/adjudication/{item_id}")
def decide(
    item_id: RowId,
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    admin: AdminUser,
    form: Annotated[DecisionForm, form_of(DecisionForm)],
) -> Response:
    """Record the decision — per dimension "tie", "na" or "<best>><worst>" as letters (A>B) or candidate numbers
    (1>2) — then open the next case of the queue, or the emptied queue."""
    answers = form.model_dump()  # by dimension key (a dimension may be called "reason" too, as before)
    _, next_id = stream.decide_from_form(
        session, project=project, item_id=item_id, answers=answers, reason=form.reason, admin=admin
    )
    base = f"/projects/{project.slug}/adjudication"
    return redirect(request, f"{base}/{next_id}?decided={item_id}" if next_id else f"{base}?decided={item_id}")
