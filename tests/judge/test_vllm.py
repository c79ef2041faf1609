"""The judge against a real vLLM server (CPU build, tiny random model): every comparison parseable thanks to
structured outputs, both orders stored, and the API around it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs import runner
from app.judge import service
from app.judge.schemas import JudgeJobIn
from app.models import Item, Job, Project, Suggestion
from tests.factories import make_item, make_project, make_user
from tests.support.vllm import MODEL_NAME

DIMENSIONS = [{"key": "helpful", "label": "Helpful", "description": "Answers what was asked."}]


def make_judged_project(db: Database, base: str, *, n: int, slug: str = "jv", **judge: Any) -> int:
    """A project of n items (k = 2) with one judge dimension besides overall, judged by the tiny model."""
    with db.session() as s:
        project = make_project(s, slug, k=2, overlap=1)
        project.dimensions = DIMENSIONS
        project.guidelines = "Prefer correct, short answers."
        for i in range(n):
            make_item(s, project, f"Question {i}: what is preference data?", candidates=[f"It is pairs {i}.", "No."])
        service.update_settings(
            s,
            project=project,
            data={"judges": [{"base_url": base, "model": MODEL_NAME}], "concurrency": 8, **judge},
            allow_private=True,
        )
        return project.id


def queue(db: Database, project_id: int) -> int:
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        return service.start_job(s, project=project, request=JudgeJobIn(), user_id=None).id


def test_thirty_items_two_dimensions_every_comparison_parseable(db: Database, vllm_base_url: str) -> None:
    project_id = make_judged_project(db, vllm_base_url, n=30)
    job_id = queue(db, project_id)
    assert runner.run_one(db, worker_id="test") == (job_id, "done")
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.error is None, job.result
        assert job.progress_done == 30 and job.result["comparisons"] == 30 * 2 * 2
        rows = list(s.scalars(select(Suggestion)))
        items = {i.id: i for i in s.scalars(select(Item))}
    assert len(rows) == 60 and {r.dimension for r in rows} == {"overall", "helpful"}
    for r in rows:
        assert r.model == MODEL_NAME and r.base_url == vllm_base_url and r.job_id == job_id
        assert r.judge == f"{MODEL_NAME}@{vllm_base_url}" and len(r.prompt_version) == 12
        assert len(r.orders) == 2 and r.orders[0]["shown"] == r.orders[1]["shown"][::-1]
        assert all(o["answer"] in ("A", "B", "tie") for o in r.orders)  # structured outputs: always parseable
        assert all(0 <= o["p"] <= 1 for o in r.orders)  # logprobs came back
        if r.kind == "unsure":
            assert r.confidence == 0
        else:
            assert r.confidence is not None and 0 <= r.confidence <= 1
    for item in items.values():
        mine = [r for r in rows if r.item_id == item.id]
        expected = sum(0 if r.kind == "unsure" else (r.confidence or 0) for r in mine) / 2
        assert item.judge_confidence is not None and abs(item.judge_confidence - expected) < 1e-9

    # A second job over the same rubric finds nothing to ask and duplicates nothing.
    again = queue(db, project_id)
    assert runner.run_one(db, worker_id="test") == (again, "done")
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 60
        job = s.get(Job, again)
        assert job is not None and job.result["comparisons"] == 0 and job.progress_done == 30


def test_a_rationale_is_stored_and_a_long_candidate_is_cut_to_fit(db: Database, vllm_base_url: str) -> None:
    project_id = make_judged_project(db, vllm_base_url, n=2, slug="jr", rationale=True)
    with db.session() as s:
        item = s.scalar(select(Item).where(Item.project_id == project_id))
        assert item is not None
        from app.models import Candidate

        cand = s.scalar(select(Candidate).where(Candidate.item_id == item.id))
        assert cand is not None
        cand.text = "much longer than the context " * 200  # ~5800 characters: the server refuses it at first
    job_id = queue(db, project_id)
    assert runner.run_one(db, worker_id="test") == (job_id, "done")
    with db.session(write=False) as s:
        rows = list(s.scalars(select(Suggestion)))
    assert len(rows) == 4
    assert any(r.rationale for r in rows)  # the random model may ramble in whitespace only
    assert all(o["answer"] in ("A", "B", "tie") for r in rows for o in r.orders)


def test_api_settings_jobs_and_suggestions(
    client: TestClient, db: Database, settings: Settings, vllm_base_url: str
) -> None:
    with db.session() as s:
        admin, ann = make_user(s, "boss", role="admin"), make_user(s, "ann")
        project = make_project(s, "ja", k=2, overlap=1, members=[ann])
        item = make_item(s, project, "p", candidates=["one", "two"])
        tokens = {u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (admin, ann)}
        item_id = item.id
    h = {"Authorization": f"Bearer {tokens['boss']}"}
    url = "/api/v1/projects/ja/judge"
    assert client.post(f"{url}/jobs", json={}, headers=h).status_code == 409  # no judge yet
    assert client.get(f"{url}/settings", headers={"Authorization": f"Bearer {tokens['ann']}"}).status_code == 403
    bad = client.put(f"{url}/settings", json={"judges": [{"base_url": "ftp://x", "model": "m"}]}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"]
    body = {"judges": [{"base_url": vllm_base_url + "/v1/", "model": MODEL_NAME, "api_key": "sk-1"}]}
    saved = client.put(f"{url}/settings", json=body, headers=h)
    assert saved.status_code == 200, saved.text
    assert saved.json()["judges"][0]["api_key"] == "••••" and saved.json()["judges"][0]["base_url"] == vllm_base_url
    assert "never instructions" in saved.json()["default_rubric"]
    started = client.post(f"{url}/jobs", json={}, headers=h)
    assert started.status_code == 201 and started.json()["kind"] == "judge"
    assert client.post(f"{url}/jobs", json={}, headers=h).status_code == 409  # one at a time
    assert runner.run_one(db, worker_id="test") == (started.json()["id"], "done")
    got = client.get(f"/api/v1/projects/ja/items/{item_id}/suggestions", headers=h)
    assert got.status_code == 200 and len(got.json()) == 6  # overall + the five default dimensions
    assert {o["answer"] for s in got.json() for o in s["orders"]} <= {"A", "B", "tie"}
    assert client.get("/api/v1/projects/ja/items/999999/suggestions", headers=h).status_code == 404
