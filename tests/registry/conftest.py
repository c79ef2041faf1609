"""Fixtures for the registry: a project with a ready snapshot, a training run on it, users and tokens."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Snapshot, TrainingRun, User
from tests.factories import make_project, make_user
from tests.training.conftest import ROWS, write_snapshot


@dataclass
class Registry:
    project_id: int
    other_project_id: int
    snapshot_id: int
    snapshot_sha256: str
    run_id: int
    admin: User
    annotator: User
    tokens: dict[str, str]


@pytest.fixture
def reg(db: Database, settings: Settings) -> Registry:
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
        ids = (project.id, other.id)
        s.expunge(admin)
        s.expunge(annotator)
    snapshot_id = write_snapshot(db, settings, project_id=ids[0], rows=ROWS)
    with db.session() as s:
        run = TrainingRun(project_id=ids[0], snapshot_id=snapshot_id, state="done", base_model="/models/sft")
        s.add(run)
        s.flush()
        run_id = run.id
        snapshot = s.get(Snapshot, snapshot_id)
        assert snapshot is not None and snapshot.sha256 is not None
        sha256 = snapshot.sha256
    return Registry(ids[0], ids[1], snapshot_id, sha256, run_id, admin, annotator, tokens)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
