"""HTML: the adjudication queue and one case with every judgment side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.adjudication import service
from app.adjudication.schemas import DecisionForm
from app.annotation.dimensions import dimension_keys
from app.annotation.schemas import VerdictIn
from app.auth.deps import AdminUser
from app.kit.errors import Invalid
from app.kit.forms import form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["adjudication pages"], include_in_schema=False)


@router.get("/projects/{project}/adjudication")
def queue_page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Items waiting for a decision, closest votes first."""
    entries = service.queue(session, project=project)
    return render(request, "adjudication/queue.html", {"request": request, "project": project, "entries": entries})


@router.get("/projects/{project}/adjudication/{item_id}")
def case_page(item_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """One item: candidates, every judgment (who, what, reason, time), the decision form."""
    item, candidates, judgments, decision = service.case(session, project=project, item_id=item_id)
    position = {c.id: c.position + 1 for c in candidates}
    return render(
        request,
        "adjudication/case.html",
        {
            "request": request,
            "project": project,
            "item": item,
            "candidates": candidates,
            "judgments": judgments,
            "decision": decision,
            "position": position,
            "dimensions": dimension_keys(project),
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
    """Record the decision: per dimension "tie", "na" or "<best>><worst>" in candidate numbers (1-based)."""
    _, candidates, _, _ = service.case(session, project=project, item_id=item_id)
    by_number = {str(c.position + 1): c.id for c in candidates}
    verdicts = {}
    answers = form.model_dump()  # by dimension key (a dimension may be called "reason" too, as before)
    for dim in dimension_keys(project):
        value = answers.get(dim, "").strip()
        if value in ("tie", "na"):
            verdicts[dim] = VerdictIn.model_validate({"kind": value})
            continue
        best, _, worst = value.partition(">")
        if best not in by_number or worst not in by_number or best == worst:
            raise Invalid(f"{dim}: choose tie, n.a., or a best and a different worst candidate")
        verdicts[dim] = VerdictIn(kind="preference", chosen=by_number[best], rejected=by_number[worst])
    service.decide(session, project=project, item_id=item_id, verdicts=verdicts, reason=form.reason, admin=admin)
    return redirect(request, f"/projects/{project.slug}/adjudication")
