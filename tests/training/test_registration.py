"""A run finishing "done" with its model registers the checkpoint; the Training page shows the chain of models
with each run's held-out reward accuracy."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.models import RegisteredModel, Snapshot, User
from app.registry.weights import weights_digest
from tests.training.conftest import ROWS, World, bearer, write_snapshot

SHA = "ab" * 32


def weights_dir(path: Path, content: bytes) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(content)
    (path / "config.json").write_text("{}")
    return path


def start(client: TestClient, world: World, base_model: str, snapshot_id: int | None = None) -> int:
    body = {"snapshot_id": snapshot_id or world.snapshot_id, "base_model": base_model, "output_dir": "/out"}
    r = client.post("/api/v1/training-runs", json=body, headers=bearer(world.tokens["export"]))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def finish(client: TestClient, world: World, run_id: int, **body: Any) -> Any:
    return client.patch(f"/api/v1/training-runs/{run_id}", json=body, headers=bearer(world.tokens["export"]))


def log(accuracy: float | None) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [{"step": 1, "loss": 0.69, "rewards/accuracies": 0.5}]
    if accuracy is not None:
        entries.append({"step": 1, "eval_loss": 0.68, "eval_rewards/accuracies": accuracy})
    return entries


def models(db: Database) -> list[RegisteredModel]:
    with db.session(write=False) as s:
        found = list(s.scalars(select(RegisteredModel).order_by(RegisteredModel.id)))
        s.expunge_all()
    return found


def test_done_with_its_model_registers_the_checkpoint(
    client: TestClient, world: World, db: Database, tmp_path: Path
) -> None:
    sft = weights_dir(tmp_path / "sft", b"sft weights")
    run_id = start(client, world, str(sft))
    model = {"name": "dpo-r1", "uri": "/out/dpo-r1", "weights_sha256": SHA}
    r = finish(client, world, run_id, metrics=log(0.75), state="done", model=model)
    assert r.status_code == 200, r.text
    base, checkpoint = models(db)
    # The base model's directory is on this machine, yet the app does not read a path a token sent it.
    assert weights_digest(sft) is not None
    assert (base.kind, base.uri, base.weights_sha256, base.parent_id) == ("sft", str(sft), None, None)
    assert (checkpoint.kind, checkpoint.name, checkpoint.uri, checkpoint.weights_sha256) == (
        "checkpoint",
        "dpo-r1",
        "/out/dpo-r1",
        SHA,
    )
    assert (checkpoint.parent_id, checkpoint.training_run_id, checkpoint.snapshot_id) == (
        base.id,
        run_id,
        world.snapshot_id,
    )
    assert checkpoint.snapshot_sha256 is not None and len(checkpoint.snapshot_sha256) == 64
    assert checkpoint.metrics["eval_rewards/accuracies"] == 0.75 and checkpoint.params["beta"] == 0.1
    named = r.json()["model"]
    assert named == {
        "id": checkpoint.id,
        "name": "dpo-r1",
        "uri": "/out/dpo-r1",
        "weights_sha256": SHA,
        "parent_id": base.id,
    }
    got = client.get(f"/api/v1/training-runs/{run_id}", headers=bearer(world.tokens["export"])).json()
    assert got["model"] == named and got["final"]["eval_rewards/accuracies"] == 0.75
    listed = client.get("/api/v1/projects/dpo/training-runs", headers=bearer(world.tokens["export"])).json()
    assert [run["model"] for run in listed] == [named]

    # a second run of the same name from the same base: a suffixed name, the same parent
    second = start(client, world, str(sft))
    r = finish(client, world, second, state="done", model={"name": "dpo-r1", "uri": "/out/again"})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["name"] == "dpo-r1-2" and r.json()["model"]["weights_sha256"] is None
    assert [(m.name, m.parent_id) for m in models(db)] == [("sft", None), ("dpo-r1", base.id), ("dpo-r1-2", base.id)]


def test_the_trainer_gives_the_base_models_digest(client: TestClient, world: World, db: Database) -> None:
    """The trainer hashes the base model where it reads it; the app stores that digest on the "sft" entry it makes,
    or fills it in on an entry that has none."""
    run_id = start(client, world, "/models/sft")
    model = {"name": "dpo-r1", "uri": "/out/dpo-r1", "weights_sha256": SHA, "parent_weights_sha256": "b" * 64}
    assert finish(client, world, run_id, state="done", model=model).status_code == 200
    base, _ = models(db)
    assert (base.uri, base.weights_sha256) == ("/models/sft", "b" * 64)

    second = start(client, world, "/models/sft")
    model = {"name": "dpo-r2", "uri": "/out/dpo-r2", "parent_weights_sha256": "c" * 64}
    assert finish(client, world, second, state="done", model=model).status_code == 200
    assert models(db)[0].weights_sha256 == "b" * 64  # a recorded digest is never overwritten
    bad = {"name": "dpo-r3", "uri": "/o", "parent_weights_sha256": "xyz"}
    r = finish(client, world, start(client, world, "/models/sft"), state="done", model=bad)
    assert r.status_code == 422 and "parent_weights_sha256" in r.text


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"state": "failed", "error": "boom", "model": {"name": "m", "uri": "/o"}}, "model"),
        ({"metrics": [{"step": 1}], "model": {"name": "m", "uri": "/o"}}, "model"),
        ({"state": "done", "model": {"name": "m", "uri": "/o", "weights_sha256": "xyz"}}, "weights_sha256"),
        ({"state": "done", "model": {"name": "", "uri": "/o"}}, "name"),
        ({"state": "done", "model": {"name": "m", "uri": "/o", "surprise": 1}}, "surprise"),
    ],
)
def test_bad_models_are_refused_and_nothing_is_registered(
    client: TestClient, world: World, db: Database, body: dict[str, Any], where: str
) -> None:
    run_id = start(client, world, "/models/sft")
    r = finish(client, world, run_id, **body)
    assert r.status_code == 422, r.text
    assert any(where in str(e["loc"]) or where in e["msg"] for e in r.json()["detail"]), r.json()
    assert models(db) == []


def test_without_a_model_nothing_is_registered(client: TestClient, world: World, db: Database) -> None:
    done, failed = start(client, world, "/models/sft"), start(client, world, "/models/sft")
    assert finish(client, world, done, state="done").json()["model"] is None
    assert finish(client, world, failed, state="failed", error="out of memory").json()["model"] is None
    assert models(db) == []


def test_another_projects_token_registers_nothing(client: TestClient, world: World, db: Database) -> None:
    run_id = start(client, world, "/models/sft")
    r = client.patch(
        f"/api/v1/training-runs/{run_id}",
        json={"state": "done", "model": {"name": "m", "uri": "/o"}},
        headers=bearer(world.tokens["other"]),
    )
    assert r.status_code == 403 and models(db) == []


def test_training_page_shows_the_chain(
    client: TestClient,
    world: World,
    db: Database,
    settings: Settings,
    login_as: Callable[[User], str],
    tmp_path: Path,
) -> None:
    sft = weights_dir(tmp_path / "sft", b"sft weights")
    round_two = write_snapshot(db, settings, project_id=world.project_id, rows=ROWS[:4])
    with db.session() as s:
        for snapshot_id, rounds in ((world.snapshot_id, [1]), (round_two, [1, 2])):
            snapshot = s.get(Snapshot, snapshot_id)
            assert snapshot is not None
            snapshot.rounds = rounds
    first = start(client, world, str(sft))
    r1 = finish(client, world, first, metrics=log(0.75), state="done", model={"name": "dpo-r1", "uri": "/out/r1"})
    second = start(client, world, "/out/r1", snapshot_id=round_two)  # round 2 trains from the round-1 checkpoint
    r2 = finish(client, world, second, metrics=log(None), state="done", model={"name": "dpo-r2", "uri": "/out/r2"})
    r1_id, r2_id = r1.json()["model"]["id"], r2.json()["model"]["id"]
    assert r2.json()["model"]["parent_id"] == r1_id

    login_as(world.annotator)
    assert client.get("/projects/dpo/training").status_code == 403
    client.post("/logout")
    client.cookies.clear()
    login_as(world.admin)
    page = client.get("/projects/dpo/training")
    assert page.status_code == 200
    chain = page.text[page.text.index('id="chain"') : page.text.index("</section>", page.text.index('id="chain"'))]
    rows = re.findall(r'<tr id="chain-model-(\d+)" data-depth="(\d)">(.*?)</tr>', chain, re.S)
    base_id = models(db)[0].id
    assert [(int(i), int(d)) for i, d, _ in rows] == [(base_id, 0), (r1_id, 1), (r2_id, 2)]
    cells = {int(i): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)) for i, _, body in rows}
    assert "sft" in cells[base_id] and f"#{world.snapshot_id}" not in cells[base_id]
    assert f"#{world.snapshot_id}" in cells[r1_id] and "rounds 1" in cells[r1_id] and "0.750" in cells[r1_id]
    assert f"#{round_two}" in cells[r2_id] and "rounds 1, 2" in cells[r2_id] and "no test rows" in cells[r2_id]
    assert "dpo-r1" in cells[r2_id] and f"#{second}" in cells[r2_id]  # its parent and its run
