"""The webhooks' queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Project, Webhook, WebhookDelivery


def webhooks_of(session: Session, project: Project) -> list[Webhook]:
    """A project's webhooks, oldest first."""
    return list(session.scalars(select(Webhook).where(Webhook.project_id == project.id).order_by(Webhook.id)))


def webhook_by_id(session: Session, project: Project, webhook_id: int) -> Webhook | None:
    query = select(Webhook).where(Webhook.project_id == project.id, Webhook.id == webhook_id)
    return session.scalar(query)


def recent_deliveries(session: Session, webhook_ids: list[int], *, limit: int) -> list[WebhookDelivery]:
    """The newest ``limit`` deliveries of each of these webhooks, newest first."""
    found: list[WebhookDelivery] = []
    for webhook_id in webhook_ids:  # a project has a handful: one indexed range each
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
        found.extend(session.scalars(query))
    return found
