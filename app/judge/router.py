"""HTML: the judge page — the judges and rubric, start/cancel a judge job, live progress (htmx polling), coverage."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth.deps import AdminUser
from app.jobs import service as jobs
from app.judge import service
from app.judge.rubric import DEFAULT_RUBRIC
from app.judge.schemas import JudgeJobIn, JudgeSettings
from app.kit.errors import AppError, Invalid, NotFound
from app.kit.forms import FormModel, form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.models import Project
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["judge pages"], include_in_schema=False)
_JUDGE_LINE = re.compile(r"^(?P<model>.+?)@(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.*)$")  # the first @ before a scheme


class JudgeSettingsForm(FormModel):
    """The judge settings as typed: judges one ``model@base_url`` a line, numbers as text."""

    judges: str = ""
    api_key: str = ""  # blank: each judge keeps its stored key (while its server stays the same)
    clear_api_key: str = ""
    rubric: str = ""
    concurrency: str = ""
    rationale: str = ""
    max_candidate_chars: str = ""


def _stored(project: Project) -> tuple[JudgeSettings, str | None]:
    try:
        return service.settings_of(project), None
    except Invalid as exc:  # stored before today's checks: the form starts afresh so they can be replaced
        return JudgeSettings(), f"{exc.detail} — save the settings again"


def _values(settings: JudgeSettings) -> dict[str, str]:
    """The form's fields as the stored settings fill them."""
    return {
        "judges": "\n".join(f"{j.model}@{j.base_url}" for j in settings.judges),
        "rubric": settings.rubric,
        "concurrency": str(settings.concurrency),
        "rationale": "1" if settings.rationale else "",
        "max_candidate_chars": str(settings.max_candidate_chars),
    }


def _context(request: Request, session: SessionDep, project: Project, **extra: Any) -> dict[str, Any]:
    settings, problem = _stored(project)
    return {
        "request": request,
        "project": project,
        "settings": settings,
        "has_key": any(j.api_key for j in settings.judges),
        "values": _values(settings),
        "problem": problem,
        "default_rubric": DEFAULT_RUBRIC,
        "coverage": service.coverage(session, project=project),
        "jobs": jobs.recent_jobs(session, project_id=project.id, kind=service.KIND),
        **extra,
    }


def _message(exc: AppError) -> str:
    """A service error as one readable line (a list of field errors joined)."""
    if isinstance(exc.detail, list):
        return "; ".join(f"{' → '.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}" for e in exc.detail)
    return str(exc.detail)


@router.get("/projects/{project}/judge")
def page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The judge settings, coverage and jobs of a project."""
    return render(request, "judge/page.html", _context(request, session, project))


@router.get("/projects/{project}/judge/jobs")
def jobs_fragment(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The jobs table (polled by the page while a job runs)."""
    return render(request, "judge/page.html", _context(request, session, project), fragment="judge/_jobs.html")


@router.get("/projects/{project}/judge/health")
def health_fragment(request: Request, project: AdminProjectDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Ask the judges' servers now (the page loads this fragment; without htmx, the whole page with it)."""
    stored, _ = _stored(project)
    found = service.health(stored, allow_private=bool(settings.allow_private_model_servers))
    context = _context(request, session, project, health=found)
    return render(request, "judge/page.html", context, fragment="judge/_health.html")


def _judges(text: str, stored: JudgeSettings, form: JudgeSettingsForm) -> list[dict[str, Any]]:
    labels = {(j.model, j.base_url): j.label for j in stored.judges}
    judges: list[dict[str, Any]] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        found = _JUDGE_LINE.match(line)
        if not found:
            raise Invalid(f"{line!r}: write each judge as model@base_url (http://… or https://…)")
        judge: dict[str, Any] = {"model": found["model"].strip(), "base_url": found["url"].strip()}
        judge["label"] = labels.get((judge["model"], judge["base_url"]), "")
        if form.clear_api_key:
            judge["api_key"] = None
        elif form.api_key:  # an empty field keeps each judge's stored key
            judge["api_key"] = form.api_key
        judges.append(judge)
    return judges


def _data(project: Project, form: JudgeSettingsForm) -> dict[str, Any]:
    stored, _ = _stored(project)
    data = stored.model_dump()
    data["judges"] = _judges(form.judges, stored, form)
    data["rubric"] = form.rubric.replace("\r\n", "\n")
    data["rationale"] = bool(form.rationale)
    try:
        data["concurrency"] = int(form.concurrency or 0)
        data["max_candidate_chars"] = int(form.max_candidate_chars or 0)
    except ValueError as exc:
        raise Invalid(f"A number is malformed: {exc}") from exc
    return data


@router.post("/projects/{project}/judge/settings")
def save_settings(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[JudgeSettingsForm, form_of(JudgeSettingsForm)],
) -> Response:
    """Save the settings form; a mistake shows the form again with what was typed and what is wrong."""
    try:
        data = _data(project, form)
        service.update_settings(
            session, project=project, data=data, allow_private=bool(settings.allow_private_model_servers)
        )
    except Invalid as exc:
        session.rollback()
        typed = form.model_dump(include={"judges", "rubric", "concurrency", "rationale", "max_candidate_chars"})
        context = _context(request, session, project, values=typed, settings_error=_message(exc))
        return render(request, "judge/page.html", context, status_code=422)
    return redirect(request, f"/projects/{project.slug}/judge")


@router.post("/projects/{project}/judge/start")
def start(request: Request, project: AdminProjectDep, session: SessionDep, user: AdminUser) -> Response:
    """Queue a judge job over the ready items, with every judge."""
    try:
        service.start_job(session, project=project, request=JudgeJobIn(), user_id=user.id)
    except AppError as exc:
        session.rollback()
        context = _context(request, session, project, start_error=_message(exc))
        return render(request, "judge/page.html", context, status_code=exc.status_code)
    return redirect(request, f"/projects/{project.slug}/judge")


@router.post("/projects/{project}/judge/jobs/{job_id}/cancel")
def cancel(job_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Cancel a judge job."""
    job = jobs.get_job(session, job_id=job_id, project_id=project.id)
    if job.kind != service.KIND:
        raise NotFound("No such judge job")
    jobs.cancel(session, job=job)
    return redirect(request, f"/projects/{project.slug}/judge")
