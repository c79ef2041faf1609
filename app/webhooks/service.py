"""A project's webhooks: made, changed, deleted, their secret rotated, a test sent, their deliveries read."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.orm import Session

from app.kit.errors import Invalid, NotFound
from app.models import Project, Webhook, WebhookDelivery, utcnow
from app.webhooks import repository, signing
from app.webhooks.events import PING, emit
from app.webhooks.schemas import WebhookIn, WebhookUpdate
from app.webhooks.urls import url_problem

LOG_LENGTH = 20  # deliveries shown per webhook
MAX_WEBHOOKS = 20  # per project


def checked_url(url: str, *, allow_private: bool) -> str:
    """``url`` stripped, or Invalid with the reason it cannot receive webhooks."""
    url = url.strip()
    problem = url_problem(url, allow_private=allow_private)
    if problem:
        raise Invalid([{"loc": ["url"], "msg": problem}])
    return url


def list_webhooks(session: Session, *, project: Project) -> list[Webhook]:
    return repository.webhooks_of(session, project)


def get_webhook(session: Session, *, project: Project, webhook_id: int) -> Webhook:
    webhook = repository.webhook_by_id(session, project, webhook_id)
    if webhook is None:
        raise NotFound("No such webhook")
    return webhook


def create_webhook(
    session: Session, *, project: Project, data: WebhookIn, user_id: int | None, allow_private: bool
) -> Webhook:
    """Make a webhook with a fresh secret (the caller shows it once)."""
    if len(repository.webhooks_of(session, project)) >= MAX_WEBHOOKS:
        raise Invalid(f"A project has at most {MAX_WEBHOOKS} webhooks")
    now = utcnow()
    webhook = Webhook(
        project_id=project.id,
        url=checked_url(data.url, allow_private=allow_private),
        events=list(data.events),
        active=data.active,
        secret=signing.new_secret(),
        adjudication_threshold=data.adjudication_threshold,
        state={},
        created_by_id=user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    session.flush()
    return webhook


def update_webhook(
    session: Session, *, project: Project, webhook_id: int, data: WebhookUpdate, allow_private: bool
) -> Webhook:
    """Change a webhook's URL, events, active flag or threshold (the URL checked again)."""
    webhook = get_webhook(session, project=project, webhook_id=webhook_id)
    if data.url is not None:
        webhook.url = checked_url(data.url, allow_private=allow_private)
    if data.events is not None:
        webhook.events = list(data.events)
    if data.active is not None:
        webhook.active = data.active
    if data.adjudication_threshold is not None and data.adjudication_threshold != webhook.adjudication_threshold:
        webhook.adjudication_threshold = data.adjudication_threshold
        webhook.state = {k: v for k, v in webhook.state.items() if not k.startswith("queue_")}  # judged afresh
    webhook.updated_at = utcnow()
    session.flush()
    return webhook


def delete_webhook(session: Session, *, project: Project, webhook_id: int) -> None:
    """Delete a webhook and its delivery log (deliveries still pending are not sent)."""
    session.delete(get_webhook(session, project=project, webhook_id=webhook_id))
    session.flush()


def rotate_secret(session: Session, *, project: Project, webhook_id: int) -> Webhook:
    """A new secret; every attempt from now on (retries of older deliveries included) is signed with it."""
    webhook = get_webhook(session, project=project, webhook_id=webhook_id)
    webhook.secret = signing.new_secret()
    webhook.updated_at = utcnow()
    session.flush()
    return webhook


def send_test(session: Session, *, project: Project, webhook_id: int) -> WebhookDelivery:
    """Queue a "ping" delivery to the webhook (sent by the worker like any other, active or not)."""
    webhook = get_webhook(session, project=project, webhook_id=webhook_id)
    data = {"webhook_id": webhook.id, "message": "A test delivery from prefstudio"}
    return emit(session, project=project, event=PING, data=data, webhooks=[webhook])[0]


def deliveries(
    session: Session, *, project: Project, webhook_id: int, limit: int = LOG_LENGTH
) -> list[WebhookDelivery]:
    """The webhook's newest deliveries, newest first."""
    webhook = get_webhook(session, project=project, webhook_id=webhook_id)
    return repository.recent_deliveries(session, [webhook.id], limit=limit)


def deliveries_by_webhook(
    session: Session, *, webhooks: list[Webhook], limit: int = LOG_LENGTH
) -> dict[int, list[WebhookDelivery]]:
    """Each webhook's newest deliveries, newest first (the page's log)."""
    found: dict[int, list[WebhookDelivery]] = defaultdict(list)
    for delivery in repository.recent_deliveries(session, [w.id for w in webhooks], limit=limit):
        found[delivery.webhook_id].append(delivery)
    return found
