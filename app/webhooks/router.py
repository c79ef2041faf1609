"""HTML: a project's webhooks page (admins only) — the list with each one's delivery log, and the forms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.deps import AdminUser
from app.kit.errors import Invalid
from app.kit.forms import FormModel, form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.models import Project
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep
from app.webhooks import service
from app.webhooks.events import EVENTS
from app.webhooks.schemas import WebhookIn, WebhookUpdate

router = APIRouter(tags=["webhook pages"], include_in_schema=False)


class WebhookForm(FormModel):
    """A webhook as its form posts it: a checkbox per event; "active" checked or absent."""

    url: str = ""
    events: list[str] = []
    active: str = ""
    adjudication_threshold: str = "10"


def _data(form: WebhookForm) -> dict[str, Any]:
    threshold = form.adjudication_threshold.strip()
    if not threshold.isdigit():
        raise Invalid([{"loc": ["adjudication_threshold"], "msg": "not a whole number"}])
    return {
        "url": form.url.strip(),
        "events": form.events,
        "active": bool(form.active),
        "adjudication_threshold": int(threshold),
    }


def _validated(schema: type[WebhookIn] | type[WebhookUpdate], data: dict[str, Any]) -> Any:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise Invalid([{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from exc


def _page(request: Request, session: SessionDep, project: Project, **extra: Any) -> Response:
    webhooks = service.list_webhooks(session, project=project)
    context = {
        "request": request,
        "project": project,
        "webhooks": webhooks,
        "log": service.deliveries_by_webhook(session, webhooks=webhooks),
        "events": EVENTS,
        "new_secret": None,
        **extra,
    }
    return render(request, "webhooks/page.html", context)


def _back(request: Request, project: Project) -> Response:
    return redirect(request, f"/projects/{project.slug}/webhooks")


@router.get("/projects/{project}/webhooks")
def page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The project's webhooks, each with its last deliveries; forms to add, change, test and delete."""
    return _page(request, session, project)


@router.post("/projects/{project}/webhooks")
def add(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    user: AdminUser,
    settings: SettingsDep,
    form: Annotated[WebhookForm, form_of(WebhookForm)],
) -> Response:
    """Add a webhook. The answer is the page itself (no redirect): it shows the new secret, this once."""
    data = _validated(WebhookIn, _data(form))
    webhook = service.create_webhook(
        session, project=project, data=data, user_id=user.id, allow_private=settings.allow_private_webhooks
    )
    return _page(request, session, project, new_secret=(webhook.id, webhook.secret))


@router.post("/projects/{project}/webhooks/{webhook_id}")
def update(
    webhook_id: RowId,
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[WebhookForm, form_of(WebhookForm)],
) -> Response:
    """Change a webhook's URL, events, active flag and threshold."""
    data = _validated(WebhookUpdate, _data(form))
    service.update_webhook(
        session, project=project, webhook_id=webhook_id, data=data, allow_private=settings.allow_private_webhooks
    )
    return _back(request, project)


@router.post("/projects/{project}/webhooks/{webhook_id}/rotate")
def rotate(webhook_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """A new signing secret, shown on the page this once."""
    webhook = service.rotate_secret(session, project=project, webhook_id=webhook_id)
    return _page(request, session, project, new_secret=(webhook.id, webhook.secret))


@router.post("/projects/{project}/webhooks/{webhook_id}/test")
def test(webhook_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Queue a test delivery; the log shows it once the worker has sent it."""
    service.send_test(session, project=project, webhook_id=webhook_id)
    return _back(request, project)


@router.post("/projects/{project}/webhooks/{webhook_id}/delete")
def delete(webhook_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Delete a webhook and its log."""
    service.delete_webhook(session, project=project, webhook_id=webhook_id)
    return _back(request, project)
