"""JSON: a project's webhooks (admins only): create, read, change, delete, rotate the secret, send a test, read
the delivery log."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from app.auth.deps import AdminUser
from app.kit.schemas import RowId, error_responses
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep
from app.webhooks import service
from app.webhooks.schemas import DeliveryOut, SecretOut, WebhookCreated, WebhookIn, WebhookOut, WebhookUpdate

router = APIRouter(tags=["webhooks"])
BASE = "/projects/{project}/webhooks"


@router.get(BASE, response_model=list[WebhookOut])
def list_webhooks(project: AdminProjectDep, session: SessionDep) -> list[WebhookOut]:
    """The project's webhooks, oldest first (without their secrets)."""
    return [WebhookOut.model_validate(w) for w in service.list_webhooks(session, project=project)]


@router.post(BASE, response_model=WebhookCreated, status_code=201, responses=error_responses(422))
def create_webhook(
    body: WebhookIn, project: AdminProjectDep, session: SessionDep, user: AdminUser, settings: SettingsDep
) -> WebhookCreated:
    """Create a webhook; the answer carries its signing secret, this once. The URL must be http(s) and, unless
    PREFSTUDIO_ALLOW_PRIVATE_WEBHOOKS is set, not on a loopback or private network (422 otherwise)."""
    webhook = service.create_webhook(
        session, project=project, data=body, user_id=user.id, allow_private=settings.allow_private_webhooks
    )
    return WebhookCreated.model_validate(webhook)


@router.get(BASE + "/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: RowId, project: AdminProjectDep, session: SessionDep) -> WebhookOut:
    """One webhook (without its secret)."""
    return WebhookOut.model_validate(service.get_webhook(session, project=project, webhook_id=webhook_id))


@router.patch(BASE + "/{webhook_id}", response_model=WebhookOut, responses=error_responses(422))
def update_webhook(
    webhook_id: RowId, body: WebhookUpdate, project: AdminProjectDep, session: SessionDep, settings: SettingsDep
) -> WebhookOut:
    """Change the URL, events, active flag or adjudication threshold."""
    webhook = service.update_webhook(
        session, project=project, webhook_id=webhook_id, data=body, allow_private=settings.allow_private_webhooks
    )
    return WebhookOut.model_validate(webhook)


@router.delete(BASE + "/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: RowId, project: AdminProjectDep, session: SessionDep) -> Response:
    """Delete a webhook and its delivery log."""
    service.delete_webhook(session, project=project, webhook_id=webhook_id)
    return Response(status_code=204)


@router.post(BASE + "/{webhook_id}/rotate-secret", response_model=SecretOut)
def rotate_secret(webhook_id: RowId, project: AdminProjectDep, session: SessionDep) -> SecretOut:
    """Replace the signing secret; the answer carries the new one, this once."""
    webhook = service.rotate_secret(session, project=project, webhook_id=webhook_id)
    return SecretOut(id=webhook.id, secret=webhook.secret)


@router.post(BASE + "/{webhook_id}/test", response_model=DeliveryOut, status_code=202)
def send_test(webhook_id: RowId, project: AdminProjectDep, session: SessionDep) -> DeliveryOut:
    """Queue a "ping" delivery; the worker sends it within a few seconds (see the deliveries)."""
    return DeliveryOut.model_validate(service.send_test(session, project=project, webhook_id=webhook_id))


@router.get(BASE + "/{webhook_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    webhook_id: RowId,
    project: AdminProjectDep,
    session: SessionDep,
    limit: int = Query(service.LOG_LENGTH, ge=1, le=200, description="how many, newest first"),
) -> list[DeliveryOut]:
    """The webhook's newest deliveries with every attempt's status code and error."""
    found = service.deliveries(session, project=project, webhook_id=webhook_id, limit=limit)
    return [DeliveryOut.model_validate(d) for d in found]
