"""Reporting endpoints: who may create and update training runs, what they must send, and the runs page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import Snapshot, TrainingRun, User
from app.training.service import loss_chart
from tests.training.conftest import World, bearer

RUN = {"base_model": "/models/sft", "output_dir": "/out/dpo", "host": "gpu-1"}


def create(client: TestClient, world: World, token: str | None = "export", **body: Any) -> Any:
    headers = bearer(world.tokens[token]) if token else {}
    return client.post("/api/v1/training-runs", json={"snapshot_id": world.snapshot_id, **RUN, **body}, headers=headers)


def run_count(db: Database) -> int:
    with db.session(write=False) as s:
        return len(s.scalars(select(TrainingRun.id)).all())


def test_export_token_records_a_run_with_defaults(client: TestClient, world: World, db: Database) -> None:
    r = create(client, world, params={"beta": 0.2, "max_steps": 3})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    assert r.json()["state"] == "running"
    with db.session(write=False) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None
        assert run.project_id == world.project_id and run.snapshot_id == world.snapshot_id
        assert run.token_id is not None
        assert run.params["beta"] == 0.2 and run.params["max_steps"] == 3
        # the defaults: lr 5e-7, effective batch 32, max_length 2048, 1 epoch, warmup 100, log every 10
        assert run.params["learning_rate"] == 5e-7
        assert run.params["effective_batch"] == 32
        assert (run.params["max_length"], run.params["epochs"], run.params["warmup_steps"]) == (2048, 1, 100)
        assert run.params["logging_steps"] == 10
        assert (run.base_model, run.output_dir, run.host) == ("/models/sft", "/out/dpo", "gpu-1")


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("revoked", 401), ("other", 403), ("annotator_api", 403), ("admin_api", 201), ("export", 201)],
)
def test_create_access(client: TestClient, world: World, db: Database, token: str | None, status: int) -> None:
    r = create(client, world, token)
    assert r.status_code == status, r.text
    assert "detail" in r.json() or status == 201
    assert run_count(db) == (1 if status == 201 else 0)


def test_annotator_and_admin_by_cookie(
    client: TestClient, world: World, db: Database, login_as: Callable[[User], str]
) -> None:
    login_as(world.annotator)
    assert create(client, world, None).status_code == 403
    client.post("/logout")
    client.cookies.clear()
    login_as(world.admin)
    r = create(client, world, None)
    assert r.status_code == 201, r.text
    assert run_count(db) == 1


def test_other_projects_snapshot_is_refused(client: TestClient, world: World, db: Database) -> None:
    r = create(client, world, snapshot_id=world.other_snapshot_id)
    assert r.status_code == 403
    r = create(client, world, snapshot_id=999_999)  # a token learns nothing about snapshots it cannot see
    assert r.status_code == 403
    r = create(client, world, "admin_api", snapshot_id=999_999)
    assert r.status_code == 404
    assert run_count(db) == 0


def test_snapshot_must_be_ready(client: TestClient, world: World, db: Database) -> None:
    with db.session() as s:
        snapshot = s.get(Snapshot, world.snapshot_id)
        assert snapshot is not None
        snapshot.state = "pending"
    r = create(client, world)
    assert r.status_code == 409
    assert "pending" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"snapshot_id": "x"}, "snapshot_id"),
        ({"base_model": ""}, "base_model"),
        ({"params": {"epochs": 4}}, "epochs"),
        ({"params": {"beta": 0}}, "beta"),
        ({"params": {"learning_rate": -1}}, "learning_rate"),
        ({"params": {"per_device_batch": 0}}, "per_device_batch"),
        ({"params": {"temperature": 1}}, "temperature"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_create_validation(client: TestClient, world: World, db: Database, body: dict[str, Any], where: str) -> None:
    r = create(client, world, **body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert any(where in [str(p) for p in e["loc"]] for e in detail), detail
    assert run_count(db) == 0


def patch(client: TestClient, world: World, run_id: int, body: dict[str, Any], token: str | None = "export") -> Any:
    headers = bearer(world.tokens[token]) if token else {}
    return client.patch(f"/api/v1/training-runs/{run_id}", json=body, headers=headers)


def entry(step: int, loss: float) -> dict[str, Any]:
    return {"step": step, "loss": loss, "rewards/chosen": 0.01 * step, "rewards/rejected": -0.01 * step}


def test_metrics_are_appended_once_and_the_run_closes(client: TestClient, world: World, db: Database) -> None:
    run_id = create(client, world).json()["id"]
    assert patch(client, world, run_id, {"metrics": [entry(1, 0.69), entry(2, 0.65)]}).status_code == 200
    # a retried report (its response was lost) adds nothing twice
    r = patch(client, world, run_id, {"metrics": [entry(2, 0.65), entry(3, 0.6)]})
    assert r.status_code == 200
    assert [e["step"] for e in r.json()["metrics"]] == [1, 2, 3]
    r = patch(client, world, run_id, {"metrics": [{"step": 3, "train_runtime": 1.5}], "state": "done"})
    assert r.status_code == 200
    out = r.json()
    assert out["state"] == "done" and out["finished_at"] is not None and out["error"] is None
    assert out["final"]["loss"] == 0.6 and out["final"]["train_runtime"] == 1.5
    # finished runs take no more reports
    assert patch(client, world, run_id, {"metrics": [entry(4, 0.5)]}).status_code == 409
    assert patch(client, world, run_id, {"state": "failed", "error": "late"}).status_code == 409
    with db.session(write=False) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None and run.state == "done" and len(run.metrics) == 4


def test_failed_run_keeps_its_error(client: TestClient, world: World) -> None:
    run_id = create(client, world).json()["id"]
    r = patch(client, world, run_id, {"state": "failed", "error": "RuntimeError: CUDA out of memory"})
    assert r.status_code == 200
    assert r.json()["state"] == "failed" and "out of memory" in r.json()["error"]


def test_non_finite_values_are_kept_as_null(client: TestClient, world: World) -> None:
    run_id = create(client, world).json()["id"]
    r = client.patch(
        f"/api/v1/training-runs/{run_id}",
        content=b'{"metrics": [{"step": 1, "loss": NaN}]}',
        headers={**bearer(world.tokens["export"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["metrics"] == [{"step": 1, "loss": None}]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metrics": []},
        {"metrics": [{"loss": 0.5}]},
        {"metrics": [{"step": -1, "loss": 0.5}]},
        {"metrics": [{"step": 1.5}]},
        {"metrics": [{"step": 1, "loss": [1, 2]}]},
        {"state": "paused"},
        {"state": "done", "error": "errors go with failed"},
        {"metrics": [{"step": i} for i in range(1001)]},
    ],
)
def test_update_validation(client: TestClient, world: World, db: Database, body: dict[str, Any]) -> None:
    run_id = create(client, world).json()["id"]
    r = patch(client, world, run_id, body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    with db.session(write=False) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None and run.metrics == [] and run.state == "running"


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("revoked", 401), ("other", 403), ("annotator_api", 403), ("admin_api", 200), ("export", 200)],
)
def test_update_access(client: TestClient, world: World, db: Database, token: str | None, status: int) -> None:
    run_id = create(client, world).json()["id"]
    r = patch(client, world, run_id, {"metrics": [entry(1, 0.7)]}, token)
    assert r.status_code == status, r.text
    with db.session(write=False) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None and len(run.metrics) == (1 if status == 200 else 0)


def test_unknown_run(client: TestClient, world: World) -> None:
    assert patch(client, world, 999_999, {"state": "done"}).status_code == 403  # token: nothing to learn
    assert patch(client, world, 999_999, {"state": "done"}, "admin_api").status_code == 404


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("revoked", 401), ("other", 403), ("annotator_api", 403), ("admin_api", 200), ("export", 200)],
)
def test_list_access(client: TestClient, world: World, token: str | None, status: int) -> None:
    create(client, world)
    headers = bearer(world.tokens[token]) if token else {}
    r = client.get("/api/v1/projects/dpo/training-runs", headers=headers)
    assert r.status_code == status, r.text
    if status == 200:
        assert [run["snapshot_id"] for run in r.json()] == [world.snapshot_id]
        assert r.json()[0]["project"] == "dpo"


def test_list_filters_by_snapshot_newest_first(client: TestClient, world: World) -> None:
    first = create(client, world).json()["id"]
    second = create(client, world).json()["id"]
    r = client.get("/api/v1/projects/dpo/training-runs", headers=bearer(world.tokens["export"]))
    assert [run["id"] for run in r.json()] == [second, first]
    r = client.get(
        f"/api/v1/projects/dpo/training-runs?snapshot={world.snapshot_id + 1000}",
        headers=bearer(world.tokens["export"]),
    )
    assert r.json() == []


def test_runs_page(client: TestClient, world: World, login_as: Callable[[User], str]) -> None:
    done = create(client, world).json()["id"]
    patch(client, world, done, {"metrics": [entry(1, 0.69), entry(2, 0.61), entry(3, 0.52)], "state": "done"})
    failed = create(client, world, params={"beta": 0.3}).json()["id"]
    patch(client, world, failed, {"state": "failed", "error": "ValueError: <b>bad</b> data"})
    running = create(client, world).json()["id"]
    login_as(world.admin)
    page = client.get("/projects/dpo/training")
    assert page.status_code == 200
    html = page.text
    assert f'id="run-{done}"' in html and f'id="run-{failed}"' in html and f'id="run-{running}"' in html
    assert f'id="snapshot-{world.snapshot_id}"' in html
    assert "<polyline" in html and html.count("<polyline") == 1  # only the run with logged steps has a chart
    assert "0.520" in html  # final loss
    assert "β 0.3" in html
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "<b>bad</b>" not in html
    assert 'hx-trigger="every 10s"' in html  # a run is going: the list refreshes itself
    assert "<script" not in html.split("</head>")[1]  # the CSP forbids inline script
    fragment = client.get("/projects/dpo/training", headers={"HX-Request": "true"})
    assert 'id="runs"' in fragment.text
    assert "<html" not in fragment.text
    assert "/projects/dpo/training" in client.get("/projects/dpo").text  # linked from the project page


def test_runs_page_is_for_admins(client: TestClient, world: World, login_as: Callable[[User], str]) -> None:
    assert client.get("/projects/dpo/training", follow_redirects=False).status_code == 303  # to the login page
    login_as(world.annotator)
    assert client.get("/projects/dpo/training").status_code == 403
    assert "/projects/dpo/training" not in client.get("/projects/dpo").text


def test_loss_chart_scales_into_the_box() -> None:
    chart = loss_chart([{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5}, {"step": 30}], width=104, height=54)
    assert chart is not None
    assert chart.points == "4.0,4.0 100.0,50.0"  # highest loss at the top left, lowest at the bottom right
    assert (chart.x_min, chart.x_max, chart.last) == (10, 20, 0.5)  # step 30 logged no loss
    assert loss_chart([{"step": 1, "loss": 0.7}]) is None
