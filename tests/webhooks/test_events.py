"""Events fire from the real actions: a snapshot written by the export service, a training run finished through
the API, a project completed by submitted judgments, the adjudication queue crossing its threshold (once)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.export import snapshots
from app.models import Project, WebhookDelivery, utcnow
from app.webhooks import delivery, tasks
from tests.factories import make_item
from tests.training.conftest import ROWS, write_snapshot
from tests.webhooks.conftest import Receiver, World, bearer

HOOKS = "/api/v1/projects/hooked/webhooks"


def subscribe(client: TestClient, world: World, receiver: Receiver, events: list[str], **fields: Any) -> int:
    body = {"url": receiver.url, "events": events, **fields}
    made = client.post(HOOKS, json=body, headers=bearer(world.tokens["admin"]))
    assert made.status_code == 201, made.text
    receiver.secret = made.json()["secret"]
    return int(made.json()["id"])


def events_queued(db: Database) -> list[tuple[str, dict[str, Any]]]:
    with db.session(write=False) as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
    return [(r.event, json.loads(r.body)["data"]) for r in rows]


def judge(client: TestClient, token: str, *, problematic: bool = False) -> int:
    """The annotator's next item, judged A over B on every dimension; returns the item's id."""
    h = bearer(token)
    task = client.post("/api/v1/projects/hooked/next", headers=h).json()["assignment"]
    first, last = task["candidates"][0]["id"], task["candidates"][-1]["id"]
    verdicts = {d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in task["dimensions"]}
    body = {
        "assignment_id": task["assignment_id"],
        "submit_key": f"submit-key-{task['assignment_id']:06d}",
        "verdicts": verdicts,
        "problematic": problematic,
    }
    sent = client.post("/api/v1/projects/hooked/judgments", json=body, headers=h)
    assert sent.status_code == 201, sent.text
    return int(task["item_id"])


def test_a_snapshot_written_by_the_export_service_is_announced(
    client: TestClient, world: World, receiver: Receiver, db: Database, settings: Settings
) -> None:
    subscribe(client, world, receiver, ["snapshot.ready"])
    judge(client, world.tokens["annotator"])
    made = client.post("/api/v1/projects/hooked/snapshots", json={}, headers=bearer(world.tokens["admin"]))
    assert made.status_code in (201, 202), made.text
    sid = made.json()["id"]
    assert events_queued(db) == []  # recorded, not written yet
    assert snapshots.write_snapshot(db, snapshot_id=sid, settings=settings) == "ready"
    assert snapshots.write_snapshot(db, snapshot_id=sid, settings=settings) == "ready"  # a second writer: no news
    queued = events_queued(db)
    assert [event for event, _ in queued] == ["snapshot.ready"]
    data = queued[0][1]
    info = client.get(f"/api/v1/snapshots/{sid}", headers=bearer(world.tokens["admin"])).json()
    assert data["snapshot_id"] == sid and data["rows"] == info["row_count"] and data["sha256"] == info["sha256"]
    assert data["download"] == f"/api/v1/snapshots/{sid}.jsonl"

    delivery.deliver_due(db)
    assert len(receiver.requests) == 1 and receiver.requests[0].signature_ok
    assert receiver.requests[0].json["event"] == "snapshot.ready"


def test_training_runs_finishing_through_the_api_are_announced(
    client: TestClient, world: World, receiver: Receiver, db: Database, settings: Settings
) -> None:
    subscribe(client, world, receiver, ["training_run.finished", "training_run.failed"])
    sid = write_snapshot(db, settings, project_id=world.project_id, rows=ROWS)
    worker = bearer(world.tokens["export"])
    run = {"snapshot_id": sid, "base_model": "/models/sft", "output_dir": "/out/dpo", "host": "gpu-1"}
    ok_id = client.post("/api/v1/training-runs", json=run, headers=worker).json()["id"]
    bad_id = client.post("/api/v1/training-runs", json=run, headers=worker).json()["id"]
    logged = client.patch(
        f"/api/v1/training-runs/{ok_id}", json={"metrics": [{"step": 1, "loss": 0.69}]}, headers=worker
    )
    assert logged.status_code == 200 and events_queued(db) == []  # still running: nothing to say
    done = client.patch(
        f"/api/v1/training-runs/{ok_id}", json={"state": "done", "metrics": [{"step": 2, "loss": 0.5}]}, headers=worker
    )
    failed = client.patch(
        f"/api/v1/training-runs/{bad_id}", json={"state": "failed", "error": "CUDA OOM"}, headers=worker
    )
    assert done.status_code == failed.status_code == 200
    queued = events_queued(db)
    assert [event for event, _ in queued] == ["training_run.finished", "training_run.failed"]
    assert queued[0][1]["training_run_id"] == ok_id and queued[0][1]["metrics"]["loss"] == 0.5
    assert queued[1][1]["training_run_id"] == bad_id and queued[1][1]["error"] == "CUDA OOM"


def test_the_judgment_that_completes_the_project_is_announced_once(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    subscribe(client, world, receiver, ["project.completed", "snapshot.ready"])
    # Two items, r = 2, two annotators: the fourth judgment completes the project.
    judge(client, world.tokens["annotator"])
    judge(client, world.tokens["annotator"])
    judge(client, world.tokens["outsider"])  # one item complete, the other not
    assert events_queued(db) == []
    judge(client, world.tokens["outsider"])
    assert events_queued(db) == [("project.completed", {"items": 2, "overlap": 2})]

    # More work arrives and is done: the project is completed again, and that is news again.
    with db.session() as s:
        project = s.get(Project, world.project_id)
        assert project is not None
        make_item(s, project)
    judge(client, world.tokens["annotator"])
    assert len(events_queued(db)) == 1
    judge(client, world.tokens["outsider"])
    assert [e for e, _ in events_queued(db)] == ["project.completed", "project.completed"]
    assert events_queued(db)[1][1]["items"] == 3


def test_a_project_without_a_completion_webhook_queues_nothing(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    subscribe(client, world, receiver, ["snapshot.ready"])
    for token in ("annotator", "annotator", "outsider", "outsider"):
        judge(client, world.tokens[token])
    assert events_queued(db) == []


def test_the_adjudication_queue_crossing_its_threshold_is_announced_once(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    subscribe(client, world, receiver, ["adjudication.queue"], adjudication_threshold=1)
    with db.session() as s:
        project = s.get(Project, world.project_id)
        assert project is not None
        make_item(s, project)  # three items
    now = utcnow()

    def check() -> int:
        nonlocal now
        now += timedelta(seconds=tasks.CHECK_EVERY_S)
        return tasks.check_adjudication_queues(db, now=now)

    first = judge(client, world.tokens["annotator"], problematic=True)  # the queue: 1, not above N = 1
    assert check() == 0
    judge(client, world.tokens["annotator"], problematic=True)  # 2 > 1: crossed
    assert check() == 1
    third = judge(client, world.tokens["annotator"], problematic=True)  # 3: still above, no news
    assert check() == 0 and check() == 0
    assert [(e, d["queue"]) for e, d in events_queued(db)] == [("adjudication.queue", 2)]

    admin = bearer(world.tokens["admin"])
    for item_id in (first, third):  # decided: the queue is back at 1, the webhook armed again
        case = client.get("/api/v1/projects/hooked/adjudication", headers=admin).json()
        assert item_id in [c["item_id"] for c in case]
        dims = ("overall", "helpful", "harmless", "honest", "polite", "refusal")
        decision = {"verdicts": {d: {"kind": "tie"} for d in dims}, "reason": "looked at it"}
        made = client.post(f"/api/v1/projects/hooked/items/{item_id}/adjudication", json=decision, headers=admin)
        assert made.status_code == 201, made.text
    assert check() == 0
    with db.session() as s:
        project = s.get(Project, world.project_id)
        assert project is not None
        make_item(s, project)
    judge(client, world.tokens["annotator"], problematic=True)  # the new item, flagged: 2 > 1 again
    assert check() == 1
    assert [d["queue"] for _, d in events_queued(db)] == [2, 2]
    assert all(d["threshold"] == 1 for _, d in events_queued(db))
