"""HTML: the data explorer — the project's item list with search, filters, sorts, keyset pages and bulk actions."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.deps import AdminUser
from app.explorer import bulk
from app.explorer.query import explore
from app.explorer.schemas import BULK_ACTIONS, BulkForm, Filters, Page
from app.items.batches import batch_choices
from app.kit.errors import Invalid
from app.kit.forms import form_of
from app.kit.htmx import redirect, render
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["explorer pages"], include_in_schema=False)
PAGE = 50
FILTER_FIELDS = tuple(Filters.model_fields)


def filters_of(request: Request) -> tuple[Filters, list[str]]:
    """The filters in the query string (blank fields are not given), and what was wrong with them."""
    given = {k: v for k, v in request.query_params.items() if k in FILTER_FIELDS and v.strip() != ""}
    legacy = request.query_params.get("after_id", "").strip()  # the item list's cursor before the explorer
    if legacy and "after" not in given:
        given["after"] = legacy
    try:
        return Filters.model_validate(given), []
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return Filters(), problems


def query_string(filters: Filters, **extra: object) -> str:
    """The filters as a query string (defaults left out), with ``extra`` fields."""
    values = {**filters.model_dump(exclude_defaults=True, exclude={"after"}), **extra}
    return urlencode({k: (int(v) if isinstance(v, bool) else v) for k, v in values.items() if v is not None})


@router.get("/projects/{project}/items")
def explorer_page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The data explorer: find items by text and filters, sort them, page through them, act on a selection."""
    filters, problems = filters_of(request)
    page = Page(items=[], next=None) if problems else explore(session, project=project, filters=filters, limit=PAGE)
    done = request.query_params.get("done")
    return render(
        request,
        "explorer/page.html",
        {
            "request": request,
            "project": project,
            "filters": filters,
            "problems": problems,
            "page": page,
            "batches": batch_choices(session, project=project, chosen=filters.batch),
            "base_query": query_string(filters),
            "next_query": query_string(filters, after=page.next) if page.next else None,
            "done": done if done in BULK_ACTIONS else None,
            "changed": request.query_params.get("changed", ""),
            "passed_over": request.query_params.get("passed_over", ""),
            "job": request.query_params.get("job", ""),
        },
        status_code=422 if problems else 200,
    )


@router.post("/projects/{project}/items/bulk")
def bulk_action(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    admin: AdminUser,
    form: Annotated[BulkForm, form_of(BulkForm)],
) -> Response:
    """Apply a bulk action to the ticked items, then show the same list again with what changed."""
    if form.action not in BULK_ACTIONS:
        raise Invalid("Choose an action")
    try:
        ids = [int(i) for i in form.item]
    except ValueError as exc:
        raise Invalid("Not an item id") from exc
    if not ids:
        raise Invalid("Tick at least one item")
    result = bulk.apply(session, project=project, action=form.action, item_ids=ids, admin=admin)
    filters, _ = filters_of(request)
    back = query_string(
        filters, done=result.action, changed=result.changed, passed_over=len(result.skipped), job=result.job_id
    )
    return redirect(request, f"/projects/{project.slug}/items?{back}")
