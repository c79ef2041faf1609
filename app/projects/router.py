"""HTML: project list, project page (admin: counts, members, import, activity; annotator: start), edit."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.annotation.progress import progress as annotation_progress
from app.auth.deps import AdminUser, CurrentUser
from app.i18n import CATALOG_LOCALES, DEFAULT_LANGUAGE, LANGUAGES
from app.items.importer import ImportFailed, import_items
from app.kit.bodylimit import allow_upload
from app.kit.errors import AppError, Invalid
from app.kit.forms import form_file, form_of
from app.kit.htmx import is_htmx, redirect, render
from app.kit.schemas import RowId
from app.models import DEFAULT_DIMENSIONS, Project, User
from app.projects import service
from app.projects.deps import AdminProjectDep, ProjectDep
from app.projects.schemas import MAX_DIMENSIONS, MemberForm, PauseForm, ProjectForm, ProjectIn, ProjectPatch
from app.web.deps import SessionDep

router = APIRouter(tags=["project pages"], include_in_schema=False)


# Per other UI language a row also has ``label@<locale>`` and ``description@<locale>`` (zh_Hans: 中文).
DIMENSION_FIELD = re.compile(r"^dimension-(\d{1,2})-(key|label|description|required|(?:label|description)@\w{2,16})$")
_OTHER_LANGUAGES = [language for language in LANGUAGES if language != DEFAULT_LANGUAGE]
TRANSLATED_LOCALES = [CATALOG_LOCALES[language] for language in _OTHER_LANGUAGES]
LOCALE_NAMES = [(CATALOG_LOCALES[language], LANGUAGES[language]) for language in _OTHER_LANGUAGES]


def _dimension_row(d: dict[str, Any]) -> dict[str, str]:
    """One dimension as the form's inputs: text fields, "1"/"0" for required, the other languages' text."""
    row = {
        "key": d.get("key", ""),
        "label": d.get("label", ""),
        "description": d.get("description", ""),
        "required": "0" if d.get("required") in (False, "0") else "1",
    }
    for locale in TRANSLATED_LOCALES:
        text = (d.get("labels") or {}).get(locale) or {}
        row[f"label@{locale}"] = d.get(f"label@{locale}", text.get("label", ""))
        row[f"description@{locale}"] = d.get(f"description@{locale}", text.get("description", ""))
    return row


def _dimension_rows(dimensions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row of inputs per dimension (any text round-trips), then up to two empty rows to add one."""
    rows = [_dimension_row(d) for d in dimensions]
    empty = max(0, min(len(rows) + 2, MAX_DIMENSIONS) - len(rows))
    return rows + [_dimension_row({}) for _ in range(empty)]


def _posted_rows(form: dict[str, str]) -> list[dict[str, str]]:
    """The ``dimension-<n>-<field>`` fields, as rows in the order of n."""
    rows: dict[int, dict[str, str]] = {}
    for name, value in form.items():
        match = DIMENSION_FIELD.match(name)
        if match:
            rows.setdefault(int(match[1]), {})[match[2]] = value
    return [rows[n] for n in sorted(rows)]


def _percent(fraction: float) -> str:
    """A fraction as the form's percentage, exactly: read back by ``_fraction`` it is the same float."""
    return format((Decimal(repr(fraction)) * 100).normalize(), "f")


def _fraction(percent: str, key: str) -> float:
    try:
        value = Decimal(percent.strip())
    except InvalidOperation as exc:
        raise Invalid(f"{key} must be a number") from exc
    if not value.is_finite():
        raise Invalid(f"{key} must be a number")
    return float(value / 100)


def _form_values(form: ProjectForm) -> dict[str, Any]:
    """The posted form, to show again with its error."""
    return {**form.model_dump(), "dimension_rows": _dimension_rows(_posted_rows(form.fields()))}


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


@router.get("/projects")
def projects_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Projects: all of them for admins, their own for annotators (with their progress)."""
    projects = service.list_projects(session, user=user)
    progress = {p.id: annotation_progress(session, project=p, annotator=user) for p in projects}
    counts = {p.id: service.counts(session, project=p) for p in projects} if user.is_admin else {}
    return render(
        request,
        "projects/list.html",
        {"request": request, "projects": projects, "progress": progress, "counts": counts},
    )


def _form_page(
    request: Request,
    *,
    project: Project | None,
    values: dict[str, Any],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "projects/form.html",
        {"request": request, "project": project, "values": values, "error": error, "locales": LOCALE_NAMES},
        status_code=status_code,
    )


@router.get("/projects/new")
def new_project_page(request: Request, admin: AdminUser) -> Response:
    """The form for a new project."""
    values = {
        "name": "",
        "slug": "",
        "guidelines": "",
        "dimension_rows": _dimension_rows(DEFAULT_DIMENSIONS),
        "k": 2,
        "overlap": 3,
        "lease_minutes": 30,
        "gold_share": 5,
        "gold_min_accuracy": 70,
        "ranking_mode": "best_worst",
        "strength": "0",
        "cohen_min_items": 20,
        "suggestions": "hidden",
        "queue_order": "fullest_first",
        "overlap_min": "",
        "adaptive_margin": 30,
    }
    return _form_page(request, project=None, values=values)


def _project_data(form: ProjectForm) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": form.name,
        "guidelines": form.guidelines,
        "dimensions": service.dimensions_from_rows(_posted_rows(form.fields())),
    }
    for key in ("k", "overlap", "lease_minutes", "cohen_min_items"):
        if key == "cohen_min_items" and not form.cohen_min_items.strip():
            continue  # a form from before the setting existed keeps the project's
        try:
            data[key] = int(getattr(form, key))
        except ValueError as exc:
            raise Invalid(f"{key} must be a whole number") from exc
    for key in ("gold_share", "gold_min_accuracy"):
        if getattr(form, key).strip():
            data[key] = _fraction(getattr(form, key), key)  # the form asks for percentages
    if form.ranking_mode:
        data["ranking_mode"] = form.ranking_mode
    if form.strength in ("0", "1"):
        data["strength"] = form.strength == "1"
    for key in ("suggestions", "queue_order"):
        if getattr(form, key):
            data[key] = getattr(form, key)
    try:
        data["overlap_min"] = int(form.overlap_min) if form.overlap_min.strip() else 0  # blank or 0: off
    except ValueError as exc:
        raise Invalid("overlap_min must be a whole number") from exc
    if form.adaptive_margin.strip():
        data["adaptive_margin"] = _fraction(form.adaptive_margin, "adaptive_margin")
    return data


@router.post("/projects/new")
def create_project(
    request: Request, session: SessionDep, admin: AdminUser, form: Annotated[ProjectForm, form_of(ProjectForm)]
) -> Response:
    """Create a project."""
    try:
        data = ProjectIn(**_project_data(form), slug=form.slug or None)
        project = service.create_project(session, data=data)
    except ValidationError as exc:
        return _form_page(
            request, project=None, values=_form_values(form), error=_validation_message(exc), status_code=422
        )
    except AppError as exc:
        return _form_page(
            request, project=None, values=_form_values(form), error=str(exc.detail), status_code=exc.status_code
        )
    service.add_member(session, project=project, username=admin.username)
    return redirect(request, f"/projects/{project.slug}")


def _project_page(request: Request, session: SessionDep, project: Project, user: User, **extra: Any) -> Response:
    context: dict[str, Any] = {
        "request": request,
        "project": project,
        "progress": annotation_progress(session, project=project, annotator=user),
        **extra,
    }
    if user.is_admin:
        context.update(
            counts=service.counts(session, project=project),
            members=service.members(session, project=project),
            activity=service.recent_activity(session, project=project),
        )
    return render(request, "projects/detail.html", context, status_code=int(extra.get("status_code", 200)))


@router.get("/projects/{project}")
def project_page(request: Request, project: ProjectDep, session: SessionDep, user: CurrentUser) -> Response:
    """A project: for admins its counts, members, import and activity; for annotators guidelines and progress."""
    return _project_page(request, session, project, user)


@router.get("/projects/{project}/edit")
def edit_page(request: Request, project: AdminProjectDep) -> Response:
    """Edit a project's settings."""
    values = {
        "name": project.name,
        "slug": project.slug,
        "guidelines": project.guidelines,
        "dimension_rows": _dimension_rows(project.dimensions),
        "k": project.k,
        "overlap": project.overlap,
        "lease_minutes": project.lease_minutes,
        "gold_share": _percent(project.gold_share),
        "gold_min_accuracy": _percent(project.gold_min_accuracy),
        "ranking_mode": project.ranking_mode,
        "strength": "1" if project.strength else "0",
        "cohen_min_items": project.cohen_min_items,
        "suggestions": project.suggestions,
        "queue_order": project.queue_order,
        "overlap_min": project.overlap_min or "",
        "adaptive_margin": _percent(project.adaptive_margin),
    }
    return _form_page(request, project=project, values=values)


@router.post("/projects/{project}/edit")
def edit_project(
    request: Request, project: AdminProjectDep, session: SessionDep, form: Annotated[ProjectForm, form_of(ProjectForm)]
) -> Response:
    """Save a project's settings."""
    try:
        service.update_project(session, project=project, data=ProjectPatch(**_project_data(form)))
    except ValidationError as exc:
        return _form_page(
            request, project=project, values=_form_values(form), error=_validation_message(exc), status_code=422
        )
    except AppError as exc:
        session.rollback()
        return _form_page(
            request, project=project, values=_form_values(form), error=str(exc.detail), status_code=exc.status_code
        )
    return redirect(request, f"/projects/{project.slug}")


@router.post("/projects/{project}/members")
def add_member(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    admin: AdminUser,
    form: Annotated[MemberForm, form_of(MemberForm)],
) -> Response:
    """Add members: one username, or several (one a line, or comma-separated), all or none. An unknown name is
    answered on the page (the members card, for htmx) with what was typed kept."""
    try:
        added = service.add_members(session, project=project, usernames=service.split_usernames(form.username))
    except Invalid as exc:
        extra = {"member_error": str(exc.detail), "member_input": form.username, "status_code": exc.status_code}
        return _project_page(request, session, project, admin, **extra)
    if is_htmx(request):  # the card swaps in place, saying who was added
        return _project_page(request, session, project, admin, member_added=[u.username for u in added])
    return redirect(request, f"/projects/{project.slug}")


@router.post("/projects/{project}/members/{user_id}/remove")
def remove_member(user_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Remove a member (their judgments stay)."""
    service.remove_member(session, project=project, user_id=user_id)
    return redirect(request, f"/projects/{project.slug}")


async def _import_upload(request: Request, project: AdminProjectDep) -> UploadFile | None:
    """The uploaded file, read only once the caller is known to be an admin of the project (until then the
    body has the small limit of every request)."""
    allow_upload(request)
    return await form_file(request)


@router.post("/projects/{project}/import")
def import_file(
    request: Request,
    upload: Annotated[UploadFile | None, Depends(_import_upload)],
    project: AdminProjectDep,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """Upload a JSONL or CSV file of items; the result (or every bad line) shows on the project page."""
    if upload is None or not upload.filename:
        raise Invalid("Choose a file to import")
    try:
        result = import_items(session, project=project, stream=upload.file, filename=upload.filename, created_by=user)
    except ImportFailed as exc:
        session.rollback()  # nothing of a failed import stays
        return _project_page(request, session, project, user, import_error=exc.detail, status_code=422)
    return _project_page(request, session, project, user, import_result=result)


@router.post("/projects/{project}/members/{user_id}/pause")
def pause_member(
    user_id: RowId,
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    form: Annotated[PauseForm, form_of(PauseForm)],
) -> Response:
    """Pause or resume an annotator (from the agreement page)."""
    service.set_paused(session, project=project, user_id=user_id, paused=form.paused == "1")
    return redirect(request, f"/projects/{project.slug}/agreement")
