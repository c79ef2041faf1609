"""Sending: a real receiver on 127.0.0.1 answers 500, 500, then 200; the worker retries on its schedule (driven
here by the clock it is given, not by waiting), signs every attempt, and logs each status code."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.jobs.runner import run_worker
from app.models import Project, Webhook, WebhookDelivery, utcnow
from app.webhooks import delivery, events, signing, tasks
from tests.webhooks.conftest import Receiver, World, bearer

HOOKS = "/api/v1/projects/hooked/webhooks"


def make_hook(client: TestClient, world: World, receiver: Receiver, events: list[str] | None = None) -> int:
    made = client.post(
        HOOKS, json={"url": receiver.url, "events": events or ["snapshot.ready"]}, headers=bearer(world.tokens["admin"])
    )
    assert made.status_code == 201, made.text
    receiver.secret = made.json()["secret"]
    return int(made.json()["id"])


def only_delivery(db: Database) -> WebhookDelivery:
    with db.session(write=False) as s:
        rows = list(s.scalars(select(WebhookDelivery)))
    assert len(rows) == 1
    return rows[0]


def test_500_500_200_is_retried_on_schedule_and_logged(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    hook = make_hook(client, world, receiver)
    receiver.answers = [500, 500]
    queued = client.post(f"{HOOKS}/{hook}/test", headers=bearer(world.tokens["admin"]))
    assert queued.status_code == 202 and queued.json()["state"] == "pending"
    assert receiver.requests == []  # queued by the request, sent only by the worker

    now = utcnow()
    assert delivery.deliver_due(db, now=now) == 1
    first = only_delivery(db)
    assert (first.state, first.attempts, first.last_status_code) == ("pending", 1, 500)
    assert first.next_attempt_at == now + timedelta(seconds=10)
    assert delivery.deliver_due(db, now=now + timedelta(seconds=9)) == 0  # not due yet

    later = first.next_attempt_at
    assert delivery.deliver_due(db, now=later) == 1
    second = only_delivery(db)
    assert second.next_attempt_at == later + timedelta(seconds=30)
    assert delivery.deliver_due(db, now=second.next_attempt_at) == 1

    done = only_delivery(db)
    assert done.state == "delivered" and done.attempts == 3 and done.finished_at is not None
    assert [a["status_code"] for a in done.history] == [500, 500, 200]
    assert [a["error"] for a in done.history] == ["HTTP 500", "HTTP 500", None]
    assert len(receiver.requests) == 3 and all(r.signature_ok for r in receiver.requests)
    assert {r.headers["x-prefstudio-delivery"] for r in receiver.requests} == {done.guid}
    assert {r.body for r in receiver.requests} == {done.body.encode()}  # the same bytes every time
    sent = receiver.requests[0]
    assert sent.headers["content-type"] == "application/json" and sent.headers["x-prefstudio-event"] == "ping"
    assert sent.json["id"] == done.guid and sent.json["event"] == "ping" and sent.json["project"] == "hooked"
    assert set(sent.json) == {"id", "event", "created_at", "project", "data"}

    log = client.get(f"{HOOKS}/{hook}/deliveries", headers=bearer(world.tokens["admin"])).json()
    assert [a["status_code"] for a in log[0]["history"]] == [500, 500, 200] and log[0]["state"] == "delivered"
    page = client.get("/projects/hooked/webhooks", headers=bearer(world.tokens["admin"]))
    assert "500, 500, 200" in page.text


def test_a_receiver_that_keeps_failing_ends_failed_after_the_last_attempt(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    hook = make_hook(client, world, receiver)
    receiver.answers = [503] * delivery.MAX_ATTEMPTS
    client.post(f"{HOOKS}/{hook}/test", headers=bearer(world.tokens["admin"]))
    now = utcnow()
    waits = []
    for _ in range(delivery.MAX_ATTEMPTS):
        assert delivery.deliver_due(db, now=now) == 1
        row = only_delivery(db)
        waits.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
    failed = only_delivery(db)
    assert failed.state == "failed" and failed.attempts == delivery.MAX_ATTEMPTS
    assert failed.last_error == "HTTP 503"
    assert waits[:-1] == [10, 30, 120, 600, 1800, 3600, 3600]  # capped at an hour
    assert delivery.deliver_due(db, now=now + timedelta(days=1)) == 0


def test_a_redirect_is_not_followed_and_an_unreachable_receiver_is_retried(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    hook = make_hook(client, world, receiver)
    receiver.answers = [302]
    client.post(f"{HOOKS}/{hook}/test", headers=bearer(world.tokens["admin"]))
    now = utcnow()
    delivery.deliver_due(db, now=now)
    row = only_delivery(db)
    assert (row.last_status_code, row.last_error, row.state) == (302, "redirect not followed", "pending")
    assert len(receiver.requests) == 1

    # Nothing listens on the port any more: a connection error, retried later.
    dead = receiver.url.replace("/hook", "/").rsplit(":", 1)[0] + ":9/hook"
    client.patch(f"{HOOKS}/{hook}", json={"url": dead}, headers=bearer(world.tokens["admin"]))
    delivery.deliver_due(db, now=row.next_attempt_at)
    row = only_delivery(db)
    assert row.state == "pending" and row.attempts == 2 and row.last_status_code is None
    assert row.last_error and "Connect" in row.last_error


def test_the_url_is_checked_again_at_delivery(
    client: TestClient, app: object, world: World, receiver: Receiver, db: Database
) -> None:
    hook = make_hook(client, world, receiver)
    client.post(f"{HOOKS}/{hook}/test", headers=bearer(world.tokens["admin"]))
    db.settings.allow_private_webhooks = False  # type: ignore[union-attr]  # the admin turned private off since
    try:
        delivery.deliver_due(db)
    finally:
        db.settings.allow_private_webhooks = True  # type: ignore[union-attr]
    row = only_delivery(db)
    assert row.state == "pending" and row.last_error and row.last_error.startswith("refused: 127.0.0.1")
    assert "PREFSTUDIO_ALLOW_PRIVATE_WEBHOOKS" in row.last_error
    assert receiver.requests == []


def test_a_deactivated_webhook_sends_no_events_but_its_test(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    hook = make_hook(client, world, receiver, events=["snapshot.ready"])
    admin = bearer(world.tokens["admin"])
    with db.session() as s:  # an event queued while the webhook was active
        project, webhook = s.get(Project, world.project_id), s.get(Webhook, hook)
        assert project is not None and webhook is not None
        events.emit(s, project=project, event="snapshot.ready", data={}, webhooks=[webhook])
    client.post(f"{HOOKS}/{hook}/test", headers=admin)
    client.patch(f"{HOOKS}/{hook}", json={"active": False}, headers=admin)
    assert delivery.deliver_due(db) == 1
    log = client.get(f"{HOOKS}/{hook}/deliveries", headers=admin).json()
    assert [(d["event"], d["state"]) for d in log] == [("ping", "delivered"), ("snapshot.ready", "failed")]
    assert log[1]["last_error"] == "the webhook is deactivated" and log[1]["attempts"] == 0
    assert [r.json["event"] for r in receiver.requests] == ["ping"]


def test_the_worker_sends_due_deliveries(client: TestClient, world: World, receiver: Receiver, db: Database) -> None:
    hook = make_hook(client, world, receiver)
    client.post(f"{HOOKS}/{hook}/test", headers=bearer(world.tokens["admin"]))
    run_worker(db, once=True)  # `prefstudio worker --once`: no job waiting, the webhooks sent before it exits
    assert only_delivery(db).state == "delivered"

    client.post(f"{HOOKS}/{hook}/test", headers=bearer(world.tokens["admin"]))
    stop = threading.Event()
    sender = tasks.start_sender(db, stop=stop, poll_s=0.05)  # the thread `prefstudio worker` runs
    try:
        for _ in range(400):
            if len(receiver.requests) == 2:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        sender.join(timeout=tasks.STOP_WITHIN_S)
    assert len(receiver.requests) == 2 and not sender.is_alive()


def test_the_signature_is_refused_when_stale_tampered_or_keyed_otherwise() -> None:
    body = b'{"id":"x"}'
    header = signing.signature("whsec_a", timestamp=1_000_000, body=body)
    assert signing.verify("whsec_a", header, body, now=1_000_100)
    assert not signing.verify("whsec_a", header, body, now=1_000_000 + signing.TOLERANCE_S + 1)  # a replay
    assert not signing.verify("whsec_b", header, body, now=1_000_000)
    assert not signing.verify("whsec_a", header, body + b" ", now=1_000_000)
    moved = header.replace("t=1000000", "t=1000200")
    assert not signing.verify("whsec_a", moved, body, now=1_000_200)  # the timestamp is signed too


def test_the_log_keeps_ended_deliveries_for_thirty_days(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    hook = make_hook(client, world, receiver, events=["snapshot.ready"])
    now = utcnow()
    with db.session() as s:
        project, webhook = s.get(Project, world.project_id), s.get(Webhook, hook)
        assert project is not None and webhook is not None
        for _ in range(4):
            events.emit(s, project=project, event="snapshot.ready", data={}, webhooks=[webhook])
        s.flush()
        rows = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        ages = (delivery.KEEP_FINISHED + timedelta(hours=1), delivery.KEEP_FINISHED - timedelta(hours=1))
        for row, state, age in zip(
            rows, ("delivered", "failed", "delivered", "pending"), (*ages, ages[0], ages[0]), strict=True
        ):
            row.state, row.created_at = state, now - age
            row.finished_at = None if state == "pending" else now - age
    with db.session() as s:
        assert delivery.prune_finished(s, now=now) == 2  # the two ended longer ago than the keeping time
    with db.session(write=False) as s:
        left = s.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id)).all()
    assert left == ["failed", "pending"]  # ended within the time, and pending whatever its age
