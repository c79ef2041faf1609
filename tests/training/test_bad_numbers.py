"""Numbers a trainer may report that no page or database can hold: refused when posted, shown safely if stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.models import TrainingRun, User, utcnow
from tests.training.conftest import World, bearer
from tests.training.test_api import create


def _patch_raw(client: TestClient, world: World, run_id: int, raw: bytes) -> Any:
    headers = {**bearer(world.tokens["export"]), "Content-Type": "application/json"}
    return client.patch(f"/api/v1/training-runs/{run_id}", content=raw, headers=headers)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"metrics": [{"step": 1, "loss": 1' + b"0" * 400 + b"}]}",
        b'{"metrics": [{"step": 1, "loss": -1' + b"0" * 400 + b"}]}",
        b'{"metrics": [{"step": 1, "num_tokens": 9223372036854775808}]}',
        b'{"metrics": [{"step": 9223372036854775808, "loss": 0.5}]}',
    ],
)
def test_numbers_beyond_64_bits_are_refused(
    client: TestClient, world: World, db: Database, login_as: Callable[[User], str], raw: bytes
) -> None:
    run_id = create(client, world).json()["id"]
    r = _patch_raw(client, world, run_id, raw)
    assert r.status_code == 422, r.text
    assert "entry 0" in str(r.json()["detail"])
    with db.session(write=False) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None and run.metrics == []
    login_as(world.admin)
    assert client.get("/projects/dpo/training").status_code == 200


def test_float_overflow_is_kept_as_null(client: TestClient, world: World) -> None:
    run_id = create(client, world).json()["id"]
    r = _patch_raw(
        client, world, run_id, b'{"metrics": [{"step": 1, "loss": 1e400, "num_tokens": 9223372036854775807}]}'
    )
    assert r.status_code == 200, r.text
    assert r.json()["metrics"] == [{"step": 1, "loss": None, "num_tokens": 9223372036854775807}]


def test_the_page_renders_whatever_is_already_stored(
    client: TestClient, world: World, db: Database, login_as: Callable[[User], str]
) -> None:
    # Written before the checks above existed: numbers no float holds, a span that overflows, odd types.
    metrics: list[dict[str, Any]] = [
        {"step": 1, "loss": 10**400, "rewards/chosen": -(10**400), "rewards/margins": "x"},
        {"step": 2, "loss": 1.7e308, "rewards/accuracies": True},
        {"step": 3, "loss": -1.7e308},
        {"step": 10**30, "loss": 0.5},
        {"step": "4", "loss": [1]},
    ]
    with db.session() as s:
        now = utcnow()
        s.add(
            TrainingRun(
                project_id=world.project_id,
                snapshot_id=world.snapshot_id,
                state="done",
                base_model="m",
                params={"beta": 10**400, "learning_rate": "x"},
                metrics=metrics,
                created_at=now,
                updated_at=now,
            )
        )
    login_as(world.admin)
    page = client.get("/projects/dpo/training")
    assert page.status_code == 200, page.text
    assert "<polyline" in page.text and "nan" not in page.text.lower().split("<polyline")[1].split("/>")[0]
    assert client.get("/api/v1/projects/dpo/training-runs", headers=bearer(world.tokens["export"])).status_code == 200
