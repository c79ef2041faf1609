"""Sending deliveries: the worker claims the due ones, POSTs each signed, and records what the receiver said.

A claim moves the delivery's next attempt ``CLAIM_S`` ahead (on PostgreSQL under ``FOR UPDATE SKIP LOCKED``, so
two workers never take the same one); a worker that dies mid-send leaves it due again then. Network errors and
answers other than 2xx are retried after 10 s, 30 s, 2 min, 10 min, 30 min, then every hour, ``MAX_ATTEMPTS`` in
all; then the delivery is "failed". Redirects are not followed (a 3xx is a failed attempt). The log keeps a
delivery for ``KEEP_FINISHED`` after it ended; the worker deletes older ones (``prune_finished``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import Database, for_update
from app.generation.egress import AddressRefused, guarded_client
from app.models import Webhook, WebhookDelivery, utcnow
from app.webhooks import signing
from app.webhooks.events import PING
from app.webhooks.urls import url_problem

log = logging.getLogger("prefstudio.webhooks")

BACKOFF_S = (10, 30, 120, 600, 1800, 3600)  # before the 2nd, 3rd, … attempt; the last repeats
MAX_ATTEMPTS = 8
TIMEOUT_S = 10.0
CLAIM_S = 60  # well above TIMEOUT_S: a live worker has recorded its attempt long before
BATCH = 20
MAX_ERROR = 500
KEEP_FINISHED = timedelta(days=30)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    return timedelta(seconds=BACKOFF_S[min(attempts, len(BACKOFF_S)) - 1])


@dataclass(frozen=True)
class Claimed:
    id: int
    guid: str
    event: str
    body: str
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether a delivery is due (one look at the state index)."""
    query = select(WebhookDelivery.id).where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
    return session.scalar(query.limit(1)) is not None


def claim_due(session: Session, *, now: datetime, limit: int = BATCH) -> list[Claimed]:
    """Take up to ``limit`` deliveries whose next attempt is due, oldest first. Those of a deactivated webhook
    (a test delivery aside) are failed instead of sent."""
    query = (
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    claimed = []
    for delivery, hook in session.execute(for_update(session, query, skip_locked=True, of=WebhookDelivery)).tuples():
        if not hook.active and delivery.event != PING:
            delivery.state, delivery.finished_at, delivery.last_error = "failed", now, "the webhook is deactivated"
            continue
        delivery.next_attempt_at = now + timedelta(seconds=CLAIM_S)
        claimed.append(Claimed(delivery.id, delivery.guid, delivery.event, delivery.body, hook.url, hook.secret))
    session.flush()
    return claimed


def send(client: httpx.Client, claimed: Claimed, *, allow_private: bool) -> Outcome:
    """One attempt: the URL checked again, the body POSTed with its signature (made now), the answer judged."""
    problem = url_problem(claimed.url, allow_private=allow_private)
    if problem:
        return Outcome(None, f"refused: {problem}")
    body = claimed.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "prefstudio-webhooks",
        signing.EVENT_HEADER: claimed.event,
        signing.DELIVERY_HEADER: claimed.guid,
        signing.SIGNATURE_HEADER: signing.signature(claimed.secret, timestamp=int(time.time()), body=body),
    }
    try:
        response = client.post(claimed.url, content=body, headers=headers)
    except AddressRefused as exc:
        return Outcome(None, f"refused: {exc}")
    except httpx.TimeoutException:
        return Outcome(None, f"no answer within {TIMEOUT_S:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, None)
    if response.is_redirect:
        return Outcome(response.status_code, "redirect not followed")
    return Outcome(response.status_code, f"HTTP {response.status_code}")


def record(session: Session, *, delivery_id: int, outcome: Outcome, now: datetime) -> None:
    """Write one attempt's outcome: delivered, due again after the backoff, or failed for good."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:  # its webhook was deleted meanwhile
        return
    delivery.attempts += 1
    entry = {"at": now.isoformat(), "status_code": outcome.status_code, "error": outcome.error}
    delivery.history = [*delivery.history, entry]
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.state, delivery.finished_at = "delivered", now
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.state, delivery.finished_at = "failed", now
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
    session.flush()


def deliver_due(
    db: Database, *, now: datetime | None = None, client: httpx.Client | None = None, limit: int = BATCH
) -> int:
    """Send the deliveries due at ``now`` (default: the time it is); returns how many were attempted.
    ``now`` decides only what is due and when it is due next: signatures carry the real time."""
    now = now or utcnow()
    with db.session(write=False) as session:  # most passes find nothing: no write transaction for them
        if not any_due(session, now=now):
            return 0
    with db.session() as session:
        claimed = claim_due(session, now=now, limit=limit)
    if not claimed:
        return 0
    allow_private = (db.settings or get_settings()).allow_private_webhooks
    own = client is None
    client = client or guarded_client(allow_private=allow_private, timeout=TIMEOUT_S)
    try:
        for item in claimed:
            outcome = send(client, item, allow_private=allow_private)
            log.info("webhook delivery %s (%s) to %s: %s", item.guid, item.event, item.url, outcome.error or "ok")
            with db.session() as session:
                record(session, delivery_id=item.id, outcome=outcome, now=now)
    finally:
        if own:
            client.close()
    return len(claimed)


def prune_finished(session: Session, *, now: datetime) -> int:
    """Delete the deliveries that ended (delivered or failed) more than ``KEEP_FINISHED`` before ``now``; pending
    ones stay whatever their age. Returns how many went."""
    ended = WebhookDelivery.state.in_(("delivered", "failed")) & (WebhookDelivery.finished_at < now - KEEP_FINISHED)
    result = session.execute(delete(WebhookDelivery).where(ended))
    return int(getattr(result, "rowcount", 0) or 0)
