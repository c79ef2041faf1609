"""JSON: live export (streamed JSONL), preview, snapshots, and the export tokens of a project.

Export routes take an ``export``-scope bearer token of the project or an admin; creating snapshots and
tokens is for admins only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from app.auth import service as auth
from app.auth.deps import AdminUser
from app.auth.tokens import export_tokens, revoke_export_token
from app.export import pseudonyms, snapshots
from app.export.deps import ExportAccessDep, project_for_export
from app.export.diff import SnapshotDiff, diff_snapshots
from app.export.filters import resolve
from app.export.schemas import (
    ExportFilter,
    PartsWanted,
    PreviewOut,
    SnapshotCard,
    SnapshotCreate,
    SnapshotOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
)
from app.export.service import preview
from app.export.slots import SlotStreamingResponse, slots_of
from app.export.stream import jsonl_body
from app.kit.schemas import Message, RowId, error_responses
from app.models import ApiToken, Snapshot
from app.pii.schemas import PiiDecision, PiiReport
from app.pii.service import scan_export
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["export"])

FilterQuery = Annotated[ExportFilter, Query()]
JSONL = "application/jsonl"


@router.get(
    "/projects/{project}/export.jsonl",
    response_class=StreamingResponse,
    responses={200: {"content": {JSONL: {}}, "description": "one preference pair a line"}},
)
def export_jsonl(
    project: str,
    filters: FilterQuery,
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> StreamingResponse:
    """The pairs the filter keeps, streamed as JSONL (TRL-ready: prompt, chosen, rejected, reason, meta).
    Live exports are limited per server and per token: beyond that 503 / 429 with ``Retry-After``."""
    found = project_for_export(session, slug=project, access=access)
    key = pseudonyms.pseudonym_key(settings.data_dir)
    rules = resolve(session, project=found, filters=filters, key=key, by_admin=access.is_admin)  # 422 first
    slot = slots_of(request.app).take(caller=access.caller)
    try:
        return SlotStreamingResponse(
            jsonl_body(settings, project_id=found.id, filters=filters, excluded=rules.excluded, key=key),
            slot=slot,
            media_type=JSONL,
            headers={"Content-Disposition": f'attachment; filename="{found.slug}-{filters.dimension}.jsonl"'},
        )
    except BaseException:
        slot.release()
        raise


@router.get("/projects/{project}/export/preview", response_model=PreviewOut)
def export_preview(
    project: str,
    filters: FilterQuery,
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
) -> PreviewOut:
    """How many pairs the filter keeps and what each rule drops; nothing is written."""
    found = project_for_export(session, slug=project, access=access)
    key = pseudonyms.pseudonym_key(settings.data_dir)
    return preview(session, project=found, filters=filters, key=key, by_admin=access.is_admin)


@router.get("/projects/{project}/pii", response_model=PiiReport)
def pii_report(
    project: str,
    filters: FilterQuery,
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: int = Query(200, ge=0, le=10000, description="items with matches listed (all are counted)"),
) -> PiiReport:
    """Personal data in what the filter exports (e-mail addresses, phone numbers, card numbers, IBANs, API keys,
    IP addresses): counts by kind and the first items with matches, each match masked."""
    found = project_for_export(session, slug=project, access=access)
    key = pseudonyms.pseudonym_key(settings.data_dir)
    return scan_export(session, project=found, filters=filters, key=key, by_admin=access.is_admin, limit=limit)


@router.get("/projects/{project}/snapshots/diff", response_model=SnapshotDiff)
def snapshot_diff(
    project: str,
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    from_id: RowId = Query(alias="from", description="the older snapshot's id"),
    to_id: RowId = Query(alias="to", description="the newer snapshot's id"),
    limit: int = Query(50, ge=0, le=1000, description="changed pairs listed (all are counted)"),
) -> SnapshotDiff:
    """Two ready snapshots of the project compared pair by pair: added, removed, flipped and unchanged pairs,
    the changed ones counted by what their rows say, the filter fields that differ, the first changed pairs."""
    found = project_for_export(session, slug=project, access=access)
    return diff_snapshots(session, project=found, from_id=from_id, to_id=to_id, settings=settings, limit=limit)


def _snapshot_out(snapshot: Snapshot, slug: str, *, card: bool = False) -> SnapshotOut:
    data = {c: getattr(snapshot, c) for c in SnapshotOut.model_fields if c != "project"} | {"project": slug}
    data["rounds"] = data["rounds"] or []
    if card:
        return SnapshotCard(**data, card=snapshot.card)
    return SnapshotOut(**data)


@router.get("/projects/{project}/snapshots", response_model=list[SnapshotOut])
def list_snapshots(project: str, access: ExportAccessDep, session: SessionDep) -> list[SnapshotOut]:
    """The project's snapshots, newest first."""
    found = project_for_export(session, slug=project, access=access)
    return [_snapshot_out(snapshot, found.slug) for snapshot in snapshots.list_snapshots(session, project=found)]


@router.post("/projects/{project}/snapshots", response_model=SnapshotOut, status_code=202)
def create_snapshot(
    body: SnapshotCreate, project: AdminProjectDep, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> SnapshotOut:
    """Freeze an export: the worker writes the file (state "pending" until then, "ready" after)."""
    snapshot = snapshots.create_snapshot(
        session,
        project=project,
        filters=body.filters,
        name=body.name,
        key=pseudonyms.pseudonym_key(settings.data_dir),
        created_by_id=user.id,
        parts=PartsWanted(ties=body.ties, per_dimension=body.per_dimension),
        pii=PiiDecision(choice=body.pii, overrides=body.pii_overrides),
    )
    return _snapshot_out(snapshot, project.slug)


@router.get(
    "/snapshots/{snapshot_id}.jsonl",
    response_class=FileResponse,
    responses={200: {"content": {JSONL: {}}, "description": "the snapshot file"}, **error_responses(409)},
)
def snapshot_file(
    snapshot_id: str,
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    project: str | None = Query(None, description="with 'latest' and an admin login: the project"),
) -> FileResponse:
    """A ready snapshot's file, byte for byte; its sha256 is in ``X-Snapshot-SHA256``."""
    snapshot = snapshots.snapshot_for_reader(session, reference=snapshot_id, access=access, project=project)
    path = snapshots.snapshot_path(snapshot, settings)
    return FileResponse(
        path,
        media_type=JSONL,
        filename=f"snapshot-{snapshot.id}.jsonl",
        headers={"X-Snapshot-SHA256": snapshot.sha256 or "", "X-Snapshot-Id": str(snapshot.id)},
    )


@router.get(
    "/snapshots/{snapshot_id}/parts/{name}.jsonl",
    response_class=FileResponse,
    responses={200: {"content": {JSONL: {}}, "description": "a file of the snapshot"}, **error_responses(409)},
)
def snapshot_part_file(
    snapshot_id: str,
    name: str,
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    project: str | None = Query(None, description="with 'latest' and an admin login: the project"),
) -> FileResponse:
    """A file of a ready snapshot beside the main one (its ties, or another dimension), as listed in its
    ``parts``; its sha256 is in ``X-Snapshot-SHA256``."""
    snapshot = snapshots.snapshot_for_reader(session, reference=snapshot_id, access=access, project=project)
    path, part = snapshots.part_path(snapshot, name, settings)
    return FileResponse(
        path,
        media_type=JSONL,
        filename=f"snapshot-{snapshot.id}-{part['name']}.jsonl",
        headers={"X-Snapshot-SHA256": part.get("sha256") or "", "X-Snapshot-Id": str(snapshot.id)},
    )


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotCard)
def snapshot_meta(
    snapshot_id: str,
    access: ExportAccessDep,
    session: SessionDep,
    project: str | None = Query(None, description="with 'latest' and an admin login: the project"),
) -> SnapshotOut:
    """A snapshot's record and data card; ``latest`` is the newest ready snapshot of the token's project."""
    snapshot = snapshots.snapshot_for_reader(session, reference=snapshot_id, access=access, project=project)
    return _snapshot_out(snapshot, snapshots.project_slug(session, snapshot), card=True)


# --- export tokens (admin) ---------------------------------------------------------------------------------


@router.get("/projects/{project}/tokens", response_model=list[TokenOut])
def list_tokens(project: AdminProjectDep, session: SessionDep) -> list[ApiToken]:
    """The project's export tokens (their values are never shown again)."""
    return export_tokens(session, project=project)


@router.post("/projects/{project}/tokens", response_model=TokenCreated, status_code=201)
def create_token(
    body: TokenCreate, project: AdminProjectDep, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> TokenCreated:
    """A read-only token for this project's export, shown once; only its keyed hash is stored."""
    token, plain = auth.create_api_token(
        session, user=user, scope="export", settings=settings, project_id=project.id, name=body.name
    )
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=plain)


@router.delete("/projects/{project}/tokens/{token_id}", response_model=Message)
def revoke_token(token_id: RowId, project: AdminProjectDep, session: SessionDep) -> Message:
    """Revoke an export token: it stops working at once."""
    revoke_export_token(session, project=project, token_id=token_id)
    return Message(detail="revoked")
