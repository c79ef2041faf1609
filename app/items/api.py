"""JSON: import items, list them, read one."""

from __future__ import annotations

from dataclasses import asdict
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.auth.deps import AdminUser
from app.explorer import api as explorer_api
from app.explorer.query import explore
from app.explorer.schemas import Filters
from app.items import service
from app.items.batches import MAX_LISTED, list_batches
from app.items.formats.registry import NATIVE, ImportFormat
from app.items.formats.schemas import FormatImportOut
from app.items.formats.service import FormatImportResult, import_file_as
from app.items.importer import ImportResult, import_items
from app.items.judgments import import_judgments
from app.items.schemas import CandidateOut, ImportBatchOut, ItemDetailOut, ItemOut
from app.kit.bodylimit import allow_upload, spool_body
from app.kit.errors import Invalid
from app.kit.forms import form_file
from app.kit.schemas import RowId, StoredText
from app.models import Item
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["items"])
router.include_router(explorer_api.router)


@router.post("/projects/{project}/import", response_model=FormatImportOut, status_code=201)
async def import_file(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    admin: AdminUser,
    fmt: Annotated[ImportFormat, Query(alias="format", description="docs/import-formats.md")] = NATIVE,
    annotator: Annotated[
        str | None, Query(max_length=40, description="a foreign format: the external annotator's name (or prefix)")
    ] = None,
) -> FormatImportOut:
    """Import items: a multipart ``file``, or the body itself as JSONL (``application/x-ndjson``) or CSV
    (``text/csv``); with ``format`` another tool's file (also a JSON body, ``application/json``) as items and the
    judgments of its external annotators. Every bad line is reported (422, ``detail.errors`` with line numbers)
    and nothing is written."""
    content_type = request.headers.get("content-type", "")
    stream: IO[bytes]
    allow_upload(request)  # the caller is an admin of the project (AdminProjectDep): the upload limit applies
    bodies = ("application/x-ndjson", "application/jsonl", "text/csv") + (
        ("application/json",) if fmt != NATIVE else ()
    )
    if content_type.startswith("multipart/form-data"):
        upload = await form_file(request)
        if upload is None:
            raise Invalid("The form has no 'file'")
        stream, filename = upload.file, upload.filename or "upload.jsonl"
    elif content_type.startswith(bodies):
        stream = await spool_body(request)
        filename = "body.csv" if content_type.startswith("text/csv") else "body.jsonl"
    else:
        raise Invalid("Send a multipart 'file', or a JSONL (application/x-ndjson) or CSV (text/csv) body")
    result: ImportResult | FormatImportResult
    try:
        if fmt == NATIVE:  # prefstudio's own file, read as it always was
            result = await run_in_threadpool(
                lambda: import_items(session, project=project, stream=stream, filename=filename, created_by=admin)
            )
        else:
            result = await run_in_threadpool(
                lambda: import_file_as(
                    session,
                    project=project,
                    stream=stream,
                    filename=filename,
                    fmt=fmt,
                    annotator=annotator,
                    created_by=admin,
                )
            )
    finally:
        stream.close()
    return FormatImportOut(**asdict(result))


class JudgmentImportOut(BaseModel):
    lines: int
    judgments: int = Field(description="judgments stored (a dry run: that would be stored)")
    items: int
    annotators_created: list[str] = Field(description="new external users (they cannot log in)")
    annotators_matched: list[str] = Field(description="existing users the judgments were imported as")
    skipped: list[dict[str, Any]] = Field(description="the first 100 lines skipped (skip_existing), with reasons")
    skipped_count: int
    already_imported: bool = Field(description="this very file was imported before: nothing was written")
    dry_run: bool
    sha256: str


@router.post("/projects/{project}/judgments/import", response_model=JudgmentImportOut, status_code=201)
async def import_judgments_file(
    request: Request,
    response: Response,
    project: AdminProjectDep,
    session: SessionDep,
    dry_run: bool = False,
    skip_existing: bool = False,
    as_members: bool = False,
) -> JudgmentImportOut:
    """Import judgments from earlier annotation rounds (docs/import-judgments.md): a multipart ``file`` or a JSONL
    body (``application/x-ndjson``). All or nothing: every bad line is reported (422, ``detail.errors`` with line
    numbers). ``dry_run`` checks without writing; ``skip_existing`` skips lines whose annotator already judged the
    item; ``as_members`` imports an annotator named like an existing user as that user. The same file again: 200,
    ``already_imported``, nothing written."""
    content_type = request.headers.get("content-type", "")
    stream: IO[bytes]
    allow_upload(request)  # an admin of the project (AdminProjectDep): the upload limit applies
    if content_type.startswith("multipart/form-data"):
        upload = await form_file(request)
        if upload is None:
            raise Invalid("The form has no 'file'")
        stream = upload.file
    elif content_type.startswith(("application/x-ndjson", "application/jsonl")):
        stream = await spool_body(request)
    else:
        raise Invalid("Send a multipart 'file', or a JSONL (application/x-ndjson) body")
    try:
        result = await run_in_threadpool(
            lambda: import_judgments(
                session,
                project=project,
                stream=stream,
                skip_existing=skip_existing,
                as_members=as_members,
                dry_run=dry_run,
            )
        )
    finally:
        stream.close()
    if result.already_imported or dry_run:
        response.status_code = 200
    return JudgmentImportOut(**asdict(result))


@router.get("/projects/{project}/import-batches", response_model=list[ImportBatchOut])
def import_batches(
    project: AdminProjectDep,
    session: SessionDep,
    before: RowId | None = None,
    limit: int = Query(default=100, ge=1, le=MAX_LISTED),
) -> list[ImportBatchOut]:
    """The project's imports, newest first, each with its file name and counts; page with ``before`` (the last
    id you got). Filter the items of one with ``batch`` on ``GET /projects/{project}/items`` or the explorer."""
    batches = list_batches(session, project=project, before=before, limit=limit)
    return [ImportBatchOut.model_validate(b) for b in batches]


@router.get("/projects/{project}/items", response_model=list[ItemOut])
def list_items(
    response: Response,
    project: AdminProjectDep,
    session: SessionDep,
    filters: Annotated[Filters, Query()],
    after_id: RowId = 0,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ItemOut]:
    """Items in id order (or ``sort``), filtered as in the data explorer (``GET /projects/{project}/explorer``);
    page with ``after_id`` (the last id you got, id order) or ``after`` (the ``X-Next-After`` header)."""
    if after_id and not filters.after:
        filters = filters.model_copy(update={"after": str(after_id)})
    page = explore(session, project=project, filters=filters, limit=limit)
    if page.next:
        response.headers["X-Next-After"] = page.next
    return [
        ItemOut.model_validate(session.get(Item, r.id)).model_copy(update={"candidate_count": r.candidate_count})
        for r in page.items
    ]


@router.get("/projects/{project}/items/{item_id}", response_model=ItemDetailOut)
def get_item(item_id: RowId, project: AdminProjectDep, session: SessionDep) -> ItemDetailOut:
    """One item with all its candidates (every round, newest first)."""
    item, candidates = service.get_item(session, project=project, item_id=item_id)
    out = ItemOut.model_validate(item).model_dump()
    out["candidate_count"] = sum(1 for c in candidates if c.round == item.round)
    return ItemDetailOut(**out, candidates=[CandidateOut.model_validate(c) for c in candidates])


class GoldIn(BaseModel):
    expected: dict[StoredText, dict[str, Any]] | None = Field(
        description='{dimension: {"kind": "preference"|"tie"|"either", "chosen": position, "rejected": position}}; '
        "null makes the item ordinary again"
    )


@router.put("/projects/{project}/items/{item_id}/gold", response_model=ItemOut)
def set_gold(item_id: RowId, body: GoldIn, project: AdminProjectDep, session: SessionDep) -> ItemOut:
    """Mark an item as gold with its expected judgment (canonical positions, 0-based), or unmark it."""
    item = service.set_gold(session, project=project, item_id=item_id, expected=body.expected)
    return ItemOut.model_validate(item)
