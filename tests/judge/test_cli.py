"""`prefstudio judge PROJECT`: refused without a judge, queued for a worker with --enqueue, or run here against the
real vLLM server (the shared job-command helper around both this and `prefstudio generate`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.models import Job, Suggestion
from tests.factories import make_item, make_project
from tests.judge.test_vllm import make_judged_project

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_without_a_judge_it_says_so_and_fails(env: None, db: Database) -> None:
    with db.session() as s:
        make_item(s, make_project(s, "nojudge", k=2), "q", candidates=["a", "b"])
    result = runner.invoke(cli, ["judge", "nojudge"])
    assert result.exit_code == 1 and "No judge is configured" in result.output
    result = runner.invoke(cli, ["judge", "absent"])
    assert result.exit_code == 1 and "error:" in result.output
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_enqueue_leaves_the_job_to_a_worker(env: None, db: Database) -> None:
    make_judged_project(db, "http://127.0.0.1:9", n=3, slug="jq")
    result = runner.invoke(cli, ["judge", "jq", "--enqueue"])
    assert result.exit_code == 0, result.output
    with db.session(write=False) as s:
        job = s.scalar(select(Job))
        assert job is not None and job.kind == "judge" and job.state == "queued" and job.progress_total == 3
    assert f"queued judge job #{job.id} (3 items × judges)" in result.output


def test_run_here_on_the_real_server(env: None, db: Database, vllm_base_url: str) -> None:
    make_judged_project(db, vllm_base_url, n=2, slug="jc")
    result = runner.invoke(cli, ["judge", "jc"])
    assert result.exit_code == 0, result.output
    with db.session(write=False) as s:
        job = s.scalar(select(Job))
        assert job is not None and job.state == "done"
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 4  # 2 items × (overall + helpful)
    assert f"job #{job.id}: done; 4 suggestions" in result.output
