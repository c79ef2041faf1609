"""JSON: the explorer's search and filters, and its bulk actions (admins of the project)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.deps import AdminUser
from app.explorer import bulk
from app.explorer.query import explore
from app.explorer.schemas import BulkIn, BulkOut, Filters, Page
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["explorer"])


@router.get("/projects/{project}/explorer", response_model=Page)
def search(
    project: AdminProjectDep,
    session: SessionDep,
    filters: Annotated[Filters, Query()],
    limit: int = Query(default=50, ge=1, le=1000),
) -> Page:
    """Items that match the filters, sorted, one keyset page: pass the answer's ``next`` as ``after``.
    The same filters work on ``GET /projects/{project}/items``."""
    return explore(session, project=project, filters=filters, limit=limit)


@router.post("/projects/{project}/explorer/bulk", response_model=BulkOut)
def bulk_action(body: BulkIn, project: AdminProjectDep, session: SessionDep, admin: AdminUser) -> BulkOut:
    """Act on chosen items: ``gold`` (expected answers from the majority of the current round: items without a
    majority overall are skipped), ``adjudicate``, ``regenerate`` (queues a generation job), ``exclude`` from
    exports and ``include`` again."""
    return bulk.apply(session, project=project, action=body.action, item_ids=body.item_ids, admin=admin)
