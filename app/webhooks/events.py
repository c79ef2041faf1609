"""Emitting events: one delivery row per subscribed webhook, inserted in the transaction of what happened (the
outbox), so an event is sent if and only if its cause was committed, and no request waits on a receiver.

The hooks below are called where things happen. Each first reads the project's active webhooks (one indexed
query, none found for most projects) and does nothing more unless one subscribes to the event.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, not_, select
from sqlalchemy.orm import Session

from app.annotation.overlap import complete_clause, effective_target
from app.db import for_update
from app.models import Item, Project, Snapshot, TrainingRun, Webhook, WebhookDelivery, utcnow

SNAPSHOT_READY = "snapshot.ready"
TRAINING_RUN_FINISHED = "training_run.finished"
TRAINING_RUN_FAILED = "training_run.failed"
PROJECT_COMPLETED = "project.completed"
ADJUDICATION_QUEUE = "adjudication.queue"
EVENTS = (SNAPSHOT_READY, TRAINING_RUN_FINISHED, TRAINING_RUN_FAILED, PROJECT_COMPLETED, ADJUDICATION_QUEUE)
PING = "ping"  # the "send test" delivery; no webhook subscribes to it


def subscribed(session: Session, *, project_id: int, event: str) -> list[Webhook]:
    """The project's active webhooks that subscribe to ``event`` (one query on the project's webhooks)."""
    query = select(Webhook).where(Webhook.project_id == project_id, Webhook.active.is_(True))
    return [hook for hook in session.scalars(query) if event in hook.events]


def body_of(*, guid: str, event: str, created_at: datetime, project: str, data: dict[str, Any]) -> str:
    """The JSON a receiver gets, byte for byte the same on every attempt."""
    payload = {"id": guid, "event": event, "created_at": created_at.isoformat(), "project": project, "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def emit(
    session: Session, *, project: Project, event: str, data: dict[str, Any], webhooks: list[Webhook]
) -> list[WebhookDelivery]:
    """Queue ``event`` for each of ``webhooks`` (flushed, sent by the worker once the transaction commits)."""
    now = utcnow()
    deliveries = []
    for hook in webhooks:
        guid = str(uuid.uuid4())
        body = body_of(guid=guid, event=event, created_at=now, project=project.slug, data=data)
        delivery = WebhookDelivery(
            webhook_id=hook.id, guid=guid, event=event, body=body, state="pending", attempts=0, history=[]
        )
        delivery.next_attempt_at = delivery.created_at = now
        deliveries.append(delivery)
    session.add_all(deliveries)
    session.flush()
    return deliveries


# --- the hooks at the event sources ---------------------------------------------------------------------------


def snapshot_ready(session: Session, *, snapshot_id: int) -> None:
    """A snapshot was just marked ready (in that transaction)."""
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        return
    hooks = subscribed(session, project_id=snapshot.project_id, event=SNAPSHOT_READY)
    project = session.get(Project, snapshot.project_id) if hooks else None
    if project is None:
        return
    data = {
        "snapshot_id": snapshot.id,
        "name": snapshot.name,
        "format": snapshot.format,
        "rows": snapshot.row_count,
        "sha256": snapshot.sha256,
        "download": f"/api/v1/snapshots/{snapshot.id}.jsonl",
    }
    emit(session, project=project, event=SNAPSHOT_READY, data=data, webhooks=hooks)


def training_run_finished(session: Session, *, run: TrainingRun, metrics: dict[str, Any]) -> None:
    """A training run just moved to "done" or "failed" (nothing when it is still running)."""
    if run.state not in ("done", "failed"):
        return
    event = TRAINING_RUN_FINISHED if run.state == "done" else TRAINING_RUN_FAILED
    hooks = subscribed(session, project_id=run.project_id, event=event)
    project = session.get(Project, run.project_id) if hooks else None
    if project is None:
        return
    data = {
        "training_run_id": run.id,
        "snapshot_id": run.snapshot_id,
        "state": run.state,
        "error": run.error,
        "base_model": run.base_model,
        "metrics": metrics,
    }
    emit(session, project=project, event=event, data=data, webhooks=hooks)


def judgment_counted(session: Session, *, project: Project, judgments: int, target: int | None) -> None:
    """A submit brought an item to ``judgments`` (its row locked by the submit). When that is the item's target,
    the project may just have been completed: every ready item with the judgments it wants, as its progress
    counts it (``app.annotation.progress``). Costs nothing unless the item just reached its target."""
    if judgments != effective_target(project, target):
        return
    hooks = subscribed(session, project_id=project.id, event=PROJECT_COMPLETED)
    if not hooks:
        return
    # Two submits completing the last two items at once would each see the other's item open and neither tell:
    # the webhooks' rows are taken in turn, and the second looks once the first has committed. The one that finds
    # no open item is the one whose judgment completed the project, so the event is sent once.
    locked = for_update(session, select(Webhook.id).where(Webhook.id.in_([h.id for h in hooks])).order_by(Webhook.id))
    session.execute(locked)
    # Open items have the fewest claims: the queue index read from that end finds one at once.
    open_item = session.scalar(
        select(Item.id)
        .where(Item.project_id == project.id, Item.status == "ready")
        .where(not_(complete_clause(project.overlap, project.overlap_min)))
        .order_by(Item.claims.asc(), Item.id.desc())
        .limit(1)
    )
    if open_item is not None:
        return
    items = session.scalar(select(func.count()).where(Item.project_id == project.id, Item.status == "ready"))
    data = {"items": int(items or 0), "overlap": project.overlap}
    emit(session, project=project, event=PROJECT_COMPLETED, data=data, webhooks=hooks)
