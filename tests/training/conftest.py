"""Fixtures for training: a project with a ready snapshot written straight to the data directory, the tokens and
users that call the reporting endpoints, the tiny random model and the app behind a real HTTP server."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Snapshot, User, utcnow
from tests.factories import make_project, make_user
from tests.support.vllm import free_port

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

ROWS = [
    {
        "prompt": [{"role": "user", "content": f"Explain item {i} simply."}],
        "chosen": [{"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."}],
        "rejected": [{"role": "assistant", "content": "def add(a, b):\n    return a + b"}],
        "reason": f"clearer answer {i}",
        "meta": {"item_id": i, "votes": {"chosen": 3, "rejected": 0}, "margin": 3},
    }
    for i in range(6)
]


def write_snapshot(db: Database, settings: Settings, *, project_id: int, rows: list[dict[str, Any]]) -> int:
    """A ready snapshot: the JSONL under ``settings.data_dir`` and its row, as the export side leaves them."""
    body = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
    sha = hashlib.sha256(body).hexdigest()
    with db.session() as s:
        snapshot = Snapshot(
            project_id=project_id,
            name="hand-made",
            format="conversational",
            state="ready",
            row_count=len(rows),
            size_bytes=len(body),
            sha256=sha,
            finished_at=utcnow(),
        )
        s.add(snapshot)
        s.flush()
        snapshot.file_name = f"snapshot-{snapshot.id}-{sha[:16]}.jsonl"
        snapshot_id = snapshot.id
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / f"snapshot-{snapshot_id}-{sha[:16]}.jsonl").write_bytes(body)
    return snapshot_id


@dataclass
class World:
    project_id: int
    slug: str
    other_project_id: int
    snapshot_id: int
    other_snapshot_id: int
    admin: User
    annotator: User
    tokens: dict[str, str]


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    with db.session() as s:
        admin = make_user(s, "chief", role="admin")
        annotator = make_user(s, "ann1")
        project = make_project(s, "dpo", members=[annotator])
        other = make_project(s, "elsewhere")
        tokens = {
            "export": create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1],
            "other": create_api_token(s, user=admin, scope="export", settings=settings, project_id=other.id)[1],
            "admin_api": create_api_token(s, user=admin, scope="api", settings=settings)[1],
            "annotator_api": create_api_token(s, user=annotator, scope="api", settings=settings)[1],
        }
        revoked, tokens["revoked"] = create_api_token(
            s, user=admin, scope="export", settings=settings, project_id=project.id
        )
        revoked.revoked_at = utcnow()
        ids = (project.id, other.id)
        s.expunge(admin)
        s.expunge(annotator)
    return World(
        project_id=ids[0],
        slug="dpo",
        other_project_id=ids[1],
        snapshot_id=write_snapshot(db, settings, project_id=ids[0], rows=ROWS),
        other_snapshot_id=write_snapshot(db, settings, project_id=ids[1], rows=ROWS[:2]),
        admin=admin,
        annotator=annotator,
        tokens=tokens,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [m for m in ("trl", "torch", "transformers", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"the [train] extra is not installed (missing {', '.join(missing)}): pip install -e '.[train]'"
        if IN_CI:
            pytest.fail(f"CI=true: the training test must run; {message}")
        pytest.skip(message)
    from tests.support.make_tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-sft") / "model")


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The test app behind a real HTTP server (uvicorn in a thread), for a client in another process."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
