"""HTML: the training runs of a project, per snapshot (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.kit.htmx import render
from app.projects.deps import AdminProjectDep
from app.training import service
from app.training.chain import model_chain
from app.web.deps import SessionDep

router = APIRouter(tags=["training pages"], include_in_schema=False)


@router.get("/projects/{project}/training")
def training_runs(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The chain of registered models with their held-out reward accuracy, then each snapshot with its DPO runs:
    state, parameters, final metrics and loss over steps."""
    groups = service.runs_by_snapshot(session, project=project)
    return render(
        request,
        "training/runs.html",
        {
            "request": request,
            "project": project,
            "groups": groups,
            "chain": model_chain(session, project=project),
            "running": service.any_running(groups),
        },
        fragment="training/_runs.html",
    )
