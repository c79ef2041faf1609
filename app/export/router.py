"""HTML: the export page of a project (admin) — filters with a live preview, snapshots, export tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth import service as auth
from app.auth.deps import AdminUser
from app.auth.tokens import export_tokens, revoke_export_token
from app.export import pseudonyms, snapshots
from app.export.diff import diff_snapshots
from app.export.filters import names_of
from app.export.forms import SnapshotForm, TokenForm
from app.export.schemas import DROP_REASONS, ExportFilter, PreviewOut
from app.export.service import preview as preview_of
from app.kit.errors import AppError, Invalid
from app.kit.forms import form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.models import Project
from app.pii.service import scan_export
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["export pages"], include_in_schema=False)

BOOLEANS = ("drop_ties", "adjudicated", "drop_problematic")
FILTER_FIELDS = set(ExportFilter.model_fields)


def filter_from(items: Iterable[tuple[str, str]]) -> ExportFilter:
    """An ExportFilter from the page's form fields. A form that was sent (``applied``) means an unticked box is
    False; a first visit gets the defaults. Empty fields are left out; lists may repeat."""
    data: dict[str, Any] = {}
    applied = False
    for key, value in items:
        if key == "applied":
            applied = True
        elif key in ("veto", "exclude_annotators", "rounds"):
            data.setdefault(key, []).append(value)
        elif key in FILTER_FIELDS and value != "":
            data[key] = value
    if applied:
        for key in BOOLEANS:
            data[key] = data.get(key) in ("1", "true", "on")
    try:
        return ExportFilter.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise Invalid(problems) from exc


def _query(filters: ExportFilter) -> str:
    data = filters.model_dump(mode="json", exclude_defaults=True)
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        for v in value if isinstance(value, list) else [value]:
            pairs.append((key, str(v).lower() if isinstance(v, bool) else str(v)))
    return urlencode(pairs)


def _context(
    request: Request, session: SessionDep, project: Project, filters: ExportFilter, **extra: Any
) -> dict[str, Any]:
    return {
        "request": request,
        "project": project,
        "filters": filters,
        "query": _query(filters),
        "dimensions": ["overall", *project.dimension_keys],
        "reasons": DROP_REASONS,
        "snapshots": snapshots.list_snapshots(session, project=project, limit=50),
        "tokens": export_tokens(session, project=project),
        **extra,
    }


@router.get("/projects/{project}/export")
def page(request: Request, project: AdminProjectDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Filters and their preview (how many pairs each rule keeps), download, snapshots and tokens."""
    error: str | None = None
    preview: PreviewOut | None = None
    ignored: list[str] = []
    asked = request.query_params.multi_items()
    if project.kind == "arena" and "source" not in request.query_params:  # an arena's votes: only as arena
        asked.append(("source", "arena"))
    try:
        filters = filter_from(asked)
        key = pseudonyms.pseudonym_key(settings.data_dir)
        preview = preview_of(session, project=project, filters=filters, key=key, by_admin=True)
        ignored = names_of(session, project=project, key=key, of=preview.excluded_annotators)
    except AppError as exc:
        filters, error = ExportFilter(source="arena" if project.kind == "arena" else "human"), str(exc.detail)
    context = _context(request, session, project, filters, preview=preview, error=error, ignored=ignored)
    return render(request, "export/page.html", context, fragment="export/_preview.html")


@router.get("/projects/{project}/export/pii")
def pii_fragment(request: Request, project: AdminProjectDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Personal data in what the page's filter exports: the items with matches, before a snapshot is frozen."""
    asked = request.query_params.multi_items()
    if project.kind == "arena" and "source" not in request.query_params:  # as the export page asks
        asked.append(("source", "arena"))
    filters = filter_from(asked)
    key = pseudonyms.pseudonym_key(settings.data_dir)
    report = scan_export(session, project=project, filters=filters, key=key, by_admin=True)
    context = {"request": request, "project": project, "report": report, "query": _query(filters)}
    return render(request, "export/pii.html", context, fragment="export/_pii.html")


@router.get("/projects/{project}/export/snapshots")
def snapshots_fragment(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The snapshot list alone (polled while a snapshot is being written)."""
    context = {"request": request, "project": project, "snapshots": snapshots.list_snapshots(session, project=project)}
    return render(request, "export/_snapshots.html", context, fragment="export/_snapshots.html")


@router.post("/projects/{project}/snapshots")
def create_snapshot(
    request: Request,
    form: Annotated[SnapshotForm, form_of(SnapshotForm)],
    project: AdminProjectDep,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    filters = filter_from(form.filter_items())
    key = pseudonyms.pseudonym_key(settings.data_dir)
    snapshots.create_snapshot(
        session,
        project=project,
        filters=filters,
        name=form.name,
        key=key,
        created_by_id=user.id,
        parts=form.parts_wanted(),
        pii=form.pii_decision(),
    )
    return redirect(request, f"/projects/{project.slug}/export?{_query(filters)}#snapshots")


@router.get("/projects/{project}/snapshots/diff")
def snapshot_diff_page(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    from_id: RowId = Query(alias="from"),
    to_id: RowId = Query(alias="to"),
) -> Response:
    """Two snapshots compared: counts of added, removed and flipped pairs, and the first changed pairs."""
    diff = diff_snapshots(session, project=project, from_id=from_id, to_id=to_id, settings=settings)
    ready = [s for s in snapshots.list_snapshots(session, project=project) if s.state == "ready"]
    context = {"request": request, "project": project, "diff": diff, "ready": ready}
    return render(request, "export/diff.html", context)


@router.get("/projects/{project}/snapshots/{snapshot_id}")
def snapshot_page(request: Request, snapshot_id: RowId, project: AdminProjectDep, session: SessionDep) -> Response:
    """A snapshot's record and data card."""
    snapshot = snapshots.project_snapshot(session, project=project, snapshot_id=snapshot_id)
    return render(request, "export/snapshot.html", {"request": request, "project": project, "snapshot": snapshot})


@router.post("/projects/{project}/tokens")
def create_token(
    request: Request,
    form: Annotated[TokenForm, form_of(TokenForm)],
    project: AdminProjectDep,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """A new export token, shown on the page this once."""
    token, plain = auth.create_api_token(
        session, user=user, scope="export", settings=settings, project_id=project.id, name=form.name[:200]
    )
    context = _context(request, session, project, ExportFilter(), preview=None, error=None, new_token=plain)
    return render(request, "export/page.html", context, fragment="export/_tokens.html")


@router.post("/projects/{project}/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: RowId, project: AdminProjectDep, session: SessionDep) -> Response:
    revoke_export_token(session, project=project, token_id=token_id)
    return redirect(request, f"/projects/{project.slug}/export#tokens")
