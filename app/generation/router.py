"""HTML: the generation page — settings, server health, start/cancel, live progress (htmx polling)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.deps import AdminUser
from app.generation import rounds, service
from app.generation.schemas import GenerationSettings, JobIn, SettingsForm, StartForm
from app.jobs import service as jobs
from app.kit.errors import Invalid
from app.kit.forms import form_of
from app.kit.htmx import is_htmx, redirect, render
from app.kit.schemas import RowId
from app.models import Project
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["generation pages"], include_in_schema=False)


def _context(request: Request, session: SessionDep, project: Project, **extra: Any) -> dict[str, Any]:
    try:
        settings = service.settings_of(project)
        problems = settings.problems(project.k)
    except Invalid as exc:  # stored before today's checks: the form starts afresh so they can be replaced
        settings, problems = GenerationSettings(), [f"{exc.detail} — save the settings again"]
    return {
        "request": request,
        "project": project,
        "settings": settings,
        "problems": problems,
        "jobs": jobs.recent_jobs(session, project_id=project.id, kind=service.KIND),
        "round_models": rounds.endpoint_models(session, project=project),
        **extra,
    }


@router.get("/projects/{project}/generation")
def page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Generation settings, health and jobs of a project."""
    return render(request, "generation/page.html", _context(request, session, project))


@router.get("/projects/{project}/generation/jobs")
def jobs_fragment(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The jobs table (polled by the page while a job runs)."""
    return render(
        request, "generation/page.html", _context(request, session, project), fragment="generation/_jobs.html"
    )


@router.get("/projects/{project}/generation/health")
def health_fragment(request: Request, project: AdminProjectDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Ask the configured servers now."""
    found = service.health(service.settings_of(project), allow_private=bool(settings.allow_private_model_servers))
    # With htmx, the Start button is swapped out of band too: it is disabled while every server is down.
    context = _context(request, session, project, health=found, oob_gate=is_htmx(request))
    return render(request, "generation/page.html", context, fragment="generation/_health.html")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


@router.post("/projects/{project}/generation/settings")
def save_settings(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[SettingsForm, form_of(SettingsForm)],
) -> Response:
    """Save the settings form."""
    data: dict[str, Any] = {
        "base_urls": _lines(form.base_urls),
        "model": form.model.strip(),
        "mode": form.mode,
        "strategy": form.strategy,
        "stop": [s for s in form.stop.split("|") if s],
        "models": [
            {"model": m.split("@", 1)[0].strip(), "base_url": (m.split("@", 1)[1].strip() if "@" in m else None)}
            for m in _lines(form.models)
        ],
    }
    try:
        for key in ("temperature", "top_p", "timeout_s"):
            data[key] = float(getattr(form, key) or 0)
        for key in ("max_tokens", "seed", "concurrency", "max_retries"):
            data[key] = int(getattr(form, key) or 0)
        data["temperatures"] = [float(t) for t in _lines(form.temperatures)]
    except ValueError as exc:
        raise Invalid(f"A number is malformed: {exc}") from exc
    if form.clear_api_key:
        data["api_key"] = None
    elif form.api_key:  # an empty field keeps the stored key
        data["api_key"] = form.api_key
    service.update_settings(
        session, project=project, data=data, allow_private=bool(settings.allow_private_model_servers)
    )
    return redirect(request, f"/projects/{project.slug}/generation")


@router.post("/projects/{project}/generation/start")
def start(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    user: AdminUser,
    form: Annotated[StartForm, form_of(StartForm)],
    settings: SettingsDep,
) -> Response:
    """Start a job: items without candidates, listed item ids, items judged "all bad" or every item with
    candidates; from the project's settings or, with a model chosen, as a new round from that model."""
    try:
        ids = [int(x) for x in _lines(form.item_ids)]
        model_id = int(form.model_id) if form.model_id.strip() else None
    except ValueError as exc:
        raise Invalid("Item ids must be numbers") from exc
    try:
        request_in = JobIn.model_validate(
            {
                "selection": form.selection,
                "item_ids": ids,
                "model_id": model_id,
                "mix_previous": form.mix_previous in ("1", "on", "true"),
            }
        )
    except ValidationError as exc:
        raise Invalid("Choose what to generate for") from exc
    chosen, _ = service.request_settings(session, project=project, request=request_in)
    if not chosen.problems(project.k):  # an unconfigured project is told so by start_job
        service.check_reachable(chosen, allow_private=bool(settings.allow_private_model_servers))
    service.start_job(session, project=project, request=request_in, user_id=user.id)
    return redirect(request, f"/projects/{project.slug}/generation")


@router.post("/projects/{project}/jobs/{job_id}/cancel")
def cancel(job_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Cancel a job."""
    jobs.cancel(session, job=jobs.get_job(session, job_id=job_id, project_id=project.id))
    return redirect(request, f"/projects/{project.slug}/generation")
