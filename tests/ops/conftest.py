"""An app with a metrics token, a small project with an annotator, an admin and their tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from tests.conftest import make_settings
from tests.factories import make_items, make_project, make_user
from tests.support.fake_openai import FakeOpenAI

METRICS_TOKEN = "metrics-token-for-the-tests-0f3a9c"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, data_dir=tmp_path / "data", metrics_token=METRICS_TOKEN)


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    """Project "pa" (k = 2, overlap 1) with 3 items and annotator alice; api tokens of alice and the admin, and
    an export token of the project."""
    with db.session() as s:
        alice, admin = make_user(s, "alice"), make_user(s, "root", role="admin")
        project = make_project(s, "pa", k=2, overlap=1, members=[alice])
        make_items(s, project, 3)
        tokens = {u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (alice, admin)}
        tokens["export"] = create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1]
        return {"tokens": tokens, "alice_id": alice.id, "admin_id": admin.id, "project_id": project.id}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def samples(text: str) -> list[Sample]:
    """Every sample of a scrape, parsed by prometheus_client's own parser."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (None: no such sample)."""
    found = [s.value for s in samples(text) if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


@pytest.fixture
def model_server() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible server that fails on cue (a real vLLM cannot be made to answer 503 when asked)."""
    server = FakeOpenAI().start()
    yield server
    server.stop()
