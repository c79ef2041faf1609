"""The worker's part: a thread that sends due deliveries, and the adjudication queue check.

The adjudication queue is not a column but a reading of every vote of the project (``app.adjudication.service``),
too costly for a submit to redo, so the worker watches it for the projects with an ``adjudication.queue`` webhook:
it counts the queue again when the project's judgments or decisions changed (a cheap fingerprint of indexed
aggregates) or ``RECOUNT_S`` passed, and tells a webhook once when the queue grows past its threshold N; the
webhook is armed again once the queue is back at N or below.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.adjudication.service import queue as adjudication_queue
from app.db import Database, for_update
from app.models import Adjudication, Item, Judgment, Project, Webhook, utcnow
from app.webhooks.delivery import TIMEOUT_S, deliver_due, prune_finished
from app.webhooks.events import ADJUDICATION_QUEUE, emit

log = logging.getLogger("prefstudio.webhooks")

CHECK_EVERY_S = 10.0  # how often the worker looks at the queues
PRUNE_EVERY_S = 3600.0  # how often it deletes deliveries past the log's keeping time
RECOUNT_S = 600  # a queue is counted again at least this often (a review request changes no fingerprint)
QUEUE_LIMIT = 10**9
STOP_WITHIN_S = TIMEOUT_S + 5  # a stopping worker waits this long for an attempt in flight


def fingerprint(session: Session, project_id: int) -> list[Any]:
    """What the adjudication queue depends on, cheaply: judgments (count, last change), decisions, rounds."""
    judged = session.execute(
        select(func.count(), func.max(Judgment.updated_at)).where(Judgment.project_id == project_id)
    ).one()
    decided = session.scalar(select(func.count()).where(Adjudication.project_id == project_id))
    rounds = session.scalar(select(func.coalesce(func.sum(Item.round), 0)).where(Item.project_id == project_id))
    last = judged[1].isoformat() if judged[1] is not None else None
    return [int(judged[0]), last, int(decided or 0), int(rounds or 0)]


def _due(hook: Webhook, mark: list[Any], now: datetime) -> bool:
    checked = hook.state.get("queue_checked_at")
    stale = checked is None or datetime.fromisoformat(checked) + timedelta(seconds=RECOUNT_S) <= now
    return stale or hook.state.get("queue_fingerprint") != mark


def check_adjudication_queues(db: Database, *, now: datetime | None = None) -> int:
    """Look at the adjudication queue of each project with an ``adjudication.queue`` webhook; returns the number
    of events queued. The queue is counted on a read-only session; a write transaction (on SQLite, the database's
    write lock) is taken only to record a count, for a project whose fingerprint moved or whose count is old."""
    now = now or utcnow()
    with db.session(write=False) as session:
        query = select(Webhook).where(Webhook.active.is_(True)).order_by(Webhook.id)
        watching = [hook for hook in session.scalars(query) if ADJUDICATION_QUEUE in hook.events]
    by_project: dict[int, list[Webhook]] = defaultdict(list)
    for hook in watching:
        by_project[hook.project_id].append(hook)
    sent = 0
    for project_id, hooks in by_project.items():
        with db.session(write=False) as session:
            mark = fingerprint(session, project_id)
            project = session.get(Project, project_id)
            if project is None or not any(_due(hook, mark, now) for hook in hooks):
                continue
            size = len(adjudication_queue(session, project=project, limit=QUEUE_LIMIT))
        with db.session() as session:
            sent += _record(session, project=project, hook_ids=[h.id for h in hooks], size=size, mark=mark, now=now)
    return sent


def _record(
    session: Session, *, project: Project, hook_ids: list[int], size: int, mark: list[Any], now: datetime
) -> int:
    """Store the count on the webhooks and queue the event for those it takes above their N."""
    query = select(Webhook).where(Webhook.id.in_(hook_ids)).order_by(Webhook.id)
    # Locked: a second worker counting at the same time finds "above" already set, and tells nobody twice.
    hooks = list(session.scalars(for_update(session, query)))
    crossed = []
    for hook in hooks:
        above = size > hook.adjudication_threshold
        if above and not hook.state.get("queue_above"):
            crossed.append(hook)
        hook.state = {
            **hook.state,
            "queue_above": above,
            "queue_size": size,
            "queue_fingerprint": mark,
            "queue_checked_at": now.isoformat(),
        }
    for hook in crossed:
        data = {"queue": size, "threshold": hook.adjudication_threshold}
        emit(session, project=project, event=ADJUDICATION_QUEUE, data=data, webhooks=[hook])
    session.flush()
    return len(crossed)


def run_webhooks_once(db: Database) -> None:
    """One pass: check the adjudication queues, then send what is due."""
    check_adjudication_queues(db)
    while deliver_due(db):
        pass


def start_sender(db: Database, *, stop: threading.Event, poll_s: float = 1.0) -> threading.Thread:
    """The worker's webhook thread: sends due deliveries every ``poll_s`` seconds and checks the adjudication
    queues every ``CHECK_EVERY_S``, beside whatever job the worker runs, until ``stop`` is set."""

    def loop() -> None:
        checked_at = pruned_at = float("-inf")
        while not stop.is_set():
            try:
                if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                    with db.session() as session:
                        prune_finished(session, now=utcnow())
                    pruned_at = time.monotonic()
                if time.monotonic() - checked_at >= CHECK_EVERY_S:
                    check_adjudication_queues(db)
                    checked_at = time.monotonic()
                while deliver_due(db) and not stop.is_set():
                    pass
            except Exception:  # the database away for a moment: try again at the next turn
                log.exception("webhook pass failed")
            stop.wait(poll_s)

    thread = threading.Thread(target=loop, name="webhooks", daemon=True)
    thread.start()
    return thread
