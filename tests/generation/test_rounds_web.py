"""A new round from the generation page and the JSON API: what is refused (422 with a clear detail), the form,
and the job it queues (against a scriptable fake server)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs import runner
from app.models import Candidate, Job, RegisteredModel, User
from tests.factories import make_item, make_project, make_user
from tests.support.fake_openai import FakeOpenAI

DIGEST = "c3" * 32


@pytest.fixture
def setup(db: Database, settings: Settings, fake: FakeOpenAI) -> dict[str, Any]:
    with db.session() as s:
        admin = make_user(s, "boss", role="admin")
        project = make_project(s, "g", k=2, overlap=1)
        other = make_project(s, "other", k=2, overlap=1)
        for i in range(3):
            make_item(s, project, f"p{i}")
        served = RegisteredModel(
            project_id=project.id, name="dpo-r1", base_url=fake.base_url, served_name="fake", weights_sha256=DIGEST
        )
        bare = RegisteredModel(project_id=project.id, name="no-endpoint", uri="/models/x")
        foreign = RegisteredModel(project_id=other.id, name="theirs", base_url=fake.base_url, served_name="fake")
        s.add_all([served, bare, foreign])
        s.flush()
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        ids = {"served": served.id, "bare": bare.id, "foreign": foreign.id}
    return {"h": {"Authorization": f"Bearer {token}"}, **ids}


def test_refusals_name_the_problem(client: TestClient, setup: dict[str, Any]) -> None:
    h = setup["h"]

    def start(**body: Any) -> Any:
        return client.post("/api/v1/projects/g/generation/jobs", json={"selection": "all_ready", **body}, headers=h)

    bare = start(model_id=setup["bare"])
    assert bare.status_code == 422 and "no serving endpoint" in str(bare.json()["detail"])
    foreign = start(model_id=setup["foreign"])
    assert foreign.status_code == 422 and "no registered model" in str(foreign.json()["detail"])
    alone = start(mix_previous=True)
    assert alone.status_code == 422 and "needs a model_id" in str(alone.json()["detail"])
    # Mixing with no previous policy: no registered model wrote a round, and the settings name no model.
    nothing = start(model_id=setup["served"], mix_previous=True)
    assert nothing.status_code == 422 and "no previous policy" in str(nothing.json()["detail"])


def test_a_round_without_generation_settings_runs_on_the_models_endpoint(
    client: TestClient, setup: dict[str, Any], db: Database
) -> None:
    job = client.post(
        "/api/v1/projects/g/generation/jobs",
        json={"selection": "all_ready", "model_id": setup["served"]},
        headers=setup["h"],
    )
    assert job.status_code == 201, job.text
    assert job.json()["params"]["settings"]["model_id"] == setup["served"] and job.json()["progress_total"] == 3
    assert runner.run_one(db, worker_id="w") == (job.json()["id"], "done")
    with db.session(write=False) as s:
        rows = s.execute(select(Candidate.round, Candidate.model_id, Candidate.weights_sha256, Candidate.model)).all()
    assert {tuple(r) for r in rows if r[0] == 1} == {(1, setup["served"], DIGEST, "fake")}
    assert sum(1 for r in rows if r[0] == 1) == 6


def test_the_page_offers_models_with_an_endpoint_and_starts_a_round(
    client: TestClient, setup: dict[str, Any], db: Database, login_as: Any
) -> None:
    with db.session(write=False) as s:
        boss = s.scalar(select(User).where(User.username == "boss"))
    assert boss is not None
    token = login_as(boss)
    page = client.get("/projects/g/generation")
    assert page.status_code == 200
    assert f'<option value="{setup["served"]}">dpo-r1' in page.text
    assert "no-endpoint" not in page.text and "theirs" not in page.text
    form = {"selection": "all_ready", "model_id": str(setup["served"]), "mix_previous": ""}
    refused = client.post("/projects/g/generation/start", data=form, headers={"X-CSRF-Token": "forged"})
    assert refused.status_code == 403
    started = client.post("/projects/g/generation/start", data={**form, "csrf_token": token}, follow_redirects=False)
    assert started.status_code == 303, started.text
    with db.session(write=False) as s:
        job = s.scalar(select(Job).order_by(Job.id.desc()))
    assert job is not None and job.params["settings"]["model_id"] == setup["served"]
    assert [m["name"] for m in job.params["models"]] == ["dpo-r1"]
    assert "dpo-r1" in client.get("/projects/g/generation/jobs").text


def test_the_command_line_starts_a_round_by_model_name(
    setup: dict[str, Any], db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        unknown = CliRunner().invoke(cli, ["generate", "g", "--model", "nope", "--all-ready", "--enqueue"])
        queued = CliRunner().invoke(cli, ["generate", "g", "--model", "dpo-r1", "--all-ready", "--enqueue"])
    finally:
        get_settings.cache_clear()
    assert unknown.exit_code != 0 and "No registered model 'nope'" in unknown.output
    assert queued.exit_code == 0, queued.output
    with db.session(write=False) as s:
        job = s.scalar(select(Job).order_by(Job.id.desc()))
    assert job is not None and job.params["selection"] == "all_ready" and job.progress_total == 3
    assert job.params["settings"]["model_id"] == setup["served"]
