"""JSON: generation settings, server health, and generation jobs (start, watch, cancel)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.auth.deps import AdminUser
from app.generation import service
from app.generation.schemas import HealthOut, JobIn, JobOut
from app.jobs import service as jobs
from app.kit.schemas import RowId, error_responses
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["generation"])


@router.get("/projects/{project}/generation/settings")
def get_settings(project: AdminProjectDep) -> dict[str, Any]:
    """The project's generation settings (the API key is masked)."""
    return service.settings_of(project).public()


@router.put("/projects/{project}/generation/settings")
def put_settings(
    body: dict[str, Any], project: AdminProjectDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Replace the generation settings. A missing or masked ``api_key`` keeps the stored key, for the servers it
    was entered for only (after a change of server, send it again); ``null`` removes it."""
    allow_private = bool(settings.allow_private_model_servers)
    return service.update_settings(session, project=project, data=body, allow_private=allow_private).public()


@router.get("/projects/{project}/generation/health", response_model=list[HealthOut])
def health(project: AdminProjectDep, settings: SettingsDep) -> list[HealthOut]:
    """Is each configured server up, which models does it serve, and their context length."""
    allow_private = bool(settings.allow_private_model_servers)
    return service.health(service.settings_of(project), allow_private=allow_private)


@router.post(
    "/projects/{project}/generation/jobs", response_model=JobOut, status_code=201, responses=error_responses(409)
)
def start(body: JobIn, project: AdminProjectDep, session: SessionDep, user: AdminUser, settings: SettingsDep) -> JobOut:
    """Queue generation for items without candidates, chosen items, items judged "all bad" or every item with
    candidates (``all_ready``); with ``model_id``, a new round from that registered model's endpoint (422 when it
    has none), ``mix_previous`` taking one candidate of each item from the current policy. Refused (409) when no
    server of the job answers, unless ``force`` (when the worker reaches servers that this app does not)."""
    chosen, _ = service.request_settings(session, project=project, request=body)
    if not body.force and not chosen.problems(project.k):
        service.check_reachable(chosen, allow_private=bool(settings.allow_private_model_servers))
    return JobOut.model_validate(service.start_job(session, project=project, request=body, user_id=user.id))


@router.get("/projects/{project}/generation/jobs", response_model=list[JobOut])
def list_jobs(project: AdminProjectDep, session: SessionDep) -> list[JobOut]:
    """The project's recent generation jobs, newest first."""
    return [JobOut.model_validate(j) for j in jobs.recent_jobs(session, project_id=project.id, kind=service.KIND)]


@router.get("/projects/{project}/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: RowId, project: AdminProjectDep, session: SessionDep) -> JobOut:
    """One job: state, progress, rate, ETA, retries, errors."""
    return JobOut.model_validate(jobs.get_job(session, job_id=job_id, project_id=project.id))


@router.post("/projects/{project}/jobs/{job_id}/cancel", response_model=JobOut, responses=error_responses(409))
def cancel_job(job_id: RowId, project: AdminProjectDep, session: SessionDep) -> JobOut:
    """Cancel a queued or running job; items already stored stay."""
    job = jobs.get_job(session, job_id=job_id, project_id=project.id)
    return JobOut.model_validate(jobs.cancel(session, job=job))
