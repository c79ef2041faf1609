"""JSON: training runs, reported by the training worker with the project's export token (or by an admin)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.export.deps import ExportAccessDep, project_for_export
from app.kit.schemas import RowId, error_responses
from app.training import service
from app.training.schemas import RunCreate, RunCreated, RunOut, RunUpdate
from app.web.deps import SessionDep

router = APIRouter(tags=["training"])


@router.post("/training-runs", response_model=RunCreated, status_code=201, responses=error_responses(409))
def create_run(body: RunCreate, access: ExportAccessDep, session: SessionDep) -> RunCreated:
    """Start recording a DPO run on a ready snapshot (state "running")."""
    run = service.create_run(session, access=access, data=body)
    return RunCreated(id=run.id, state=run.state)


@router.patch("/training-runs/{run_id}", response_model=RunOut, responses=error_responses(409))
def update_run(run_id: RowId, body: RunUpdate, access: ExportAccessDep, session: SessionDep) -> RunOut:
    """Append log entries and/or finish the run ("done", or "failed" with the error); entries already recorded
    are skipped, so a retried report does no harm. "done" with ``model`` registers the saved checkpoint in the
    project's model registry; the answer names it."""
    run = service.update_run(session, access=access, run_id=run_id, data=body)
    model = service.checkpoints_of(session, [run.id]).get(run.id)
    return service.run_out(run, project_slug=service.project_slug(session, run.project_id), model=model)


@router.get("/training-runs/{run_id}", response_model=RunOut)
def get_run(run_id: RowId, access: ExportAccessDep, session: SessionDep) -> RunOut:
    """One run with its parameters, every log entry and the checkpoint registered from it."""
    run = service.get_run(session, access=access, run_id=run_id)
    model = service.checkpoints_of(session, [run.id]).get(run.id)
    return service.run_out(run, project_slug=service.project_slug(session, run.project_id), model=model)


@router.get("/projects/{project}/training-runs", response_model=list[RunOut])
def list_runs(
    project: str,
    access: ExportAccessDep,
    session: SessionDep,
    snapshot: RowId | None = Query(None, description="only the runs on this snapshot"),
) -> list[RunOut]:
    """The project's training runs, newest first, with their metrics."""
    found = project_for_export(session, slug=project, access=access)
    runs = service.list_runs(session, project=found, snapshot_id=snapshot)
    models = service.checkpoints_of(session, [r.id for r in runs])
    return [service.run_out(r, project_slug=found.slug, model=models.get(r.id)) for r in runs]
