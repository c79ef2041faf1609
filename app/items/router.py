"""HTML: the admin's item list and one item with its candidates."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth.deps import SessionDep
from app.items import service
from app.kit.htmx import render
from app.projects.deps import AdminProjectDep

router = APIRouter(tags=["item pages"], include_in_schema=False)
PAGE = 50


@router.get("/projects/{project}/items")
def items_page(
    request: Request, project: AdminProjectDep, session: SessionDep, after_id: int = 0, status: str | None = None
) -> Response:
    """Items of a project, 50 a page."""
    rows = service.list_items(
        session,
        project=project,
        after_id=after_id,
        limit=PAGE + 1,
        status=status if status in ("pending", "ready") else None,
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render(
        request,
        "items/list.html",
        {
            "request": request,
            "project": project,
            "rows": rows,
            "status": status,
            "next_after": rows[-1][0].id if more else None,
        },
    )


@router.get("/projects/{project}/items/{item_id}")
def item_page(item_id: int, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """One item: its prompt and every round of candidates with their provenance."""
    item, candidates = service.get_item(session, project=project, item_id=item_id)
    return render(
        request, "items/detail.html", {"request": request, "project": project, "item": item, "candidates": candidates}
    )
