"""Generation against a real vLLM server (CPU build, tiny random model)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.db import Database
from app.generation import service
from app.generation.schemas import JobIn
from app.jobs import runner
from app.models import Candidate, Item, Job
from tests.annotation.helpers import prefer_first
from tests.factories import make_item, make_project, make_user
from tests.support.vllm import MODEL_NAME

CHAT = [
    {"role": "system", "content": "You are concise."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
]


def _settings(base: str, **extra: Any) -> dict[str, Any]:
    return {"base_urls": [base], "model": MODEL_NAME, "max_tokens": 16, "temperature": 1.0, **extra}


def _run(db: Database, project_id: int, request: JobIn) -> Job:
    with db.session() as s:
        from app.models import Project

        project = s.get(Project, project_id)
        assert project is not None
        job_id = service.start_job(s, project=project, request=request, user_id=None).id
    ran = runner.run_one(db, worker_id="test")
    assert ran == (job_id, "done")
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_fifty_prompts_k4_with_chat_prompts(db: Database, vllm_base_url: str) -> None:
    with db.session() as s:
        project = make_project(s, "vl", k=4, overlap=1, generation=_settings(vllm_base_url))
        for i in range(48):
            make_item(s, project, f"Question number {i}: explain preference data.", candidates=[])
        make_item(s, project, CHAT, candidates=[])
        make_item(s, project, [{"role": "user", "content": "请用一句话介绍你自己。"}], candidates=[])
        project_id = project.id
    job = _run(db, project_id, JobIn(selection="missing"))
    assert job.error is None, job.result
    assert job.progress_done == 50 and job.result["candidates"] == 200, job.result
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).where(Item.status == "pending")) == 0
        per_item = dict(s.execute(select(Candidate.item_id, func.count()).group_by(Candidate.item_id)).tuples().all())
        assert len(per_item) == 50 and set(per_item.values()) == {4}
        cands = list(s.scalars(select(Candidate)))
    for c in cands:
        assert c.model == MODEL_NAME and c.base_url == vllm_base_url
        assert c.params["max_tokens"] == 16 and c.params["temperature"] == 1.0 and c.params["mode"] == "chat"
        assert c.seed is not None and c.finish_reason in ("stop", "length")
        assert c.prompt_tokens and c.prompt_tokens > 0 and c.completion_tokens is not None
        assert 0 < c.completion_tokens <= 16
    # Truncation by max_tokens is recorded and visible.
    assert any(c.truncated for c in cands)


def test_completion_mode_and_ladder(db: Database, vllm_base_url: str) -> None:
    settings = _settings(vllm_base_url, mode="completion", strategy="temperature_ladder", temperatures=[0.3, 0.8, 1.2])
    with db.session() as s:
        project = make_project(s, "vc", k=3, overlap=1, generation=settings)
        for i in range(5):
            make_item(s, project, f"Once upon a time {i}", candidates=[])
        project_id = project.id
    _run(db, project_id, JobIn(selection="missing"))
    with db.session(write=False) as s:
        temps = sorted({c.params["temperature"] for c in s.scalars(select(Candidate))})
        assert temps == [0.3, 0.8, 1.2]
        assert s.scalar(select(func.count()).select_from(Candidate)) == 15


def test_regenerate_items_judged_all_bad_keeps_the_old_candidates(db: Database, vllm_base_url: str) -> None:
    with db.session() as s:
        user = make_user(s, "judge")
        project = make_project(s, "vr", k=2, overlap=1, members=[user], generation=_settings(vllm_base_url))
        bad = make_item(s, project, "A prompt whose answers are all bad", candidates=["bad one", "bad two"])
        make_item(s, project, "A fine prompt", candidates=["good", "fine"])
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None and task.item.id == bad.id
        data = prefer_first(task, project)
        data.all_bad = True
        submit_judgment(
            s, project=project, annotator=user, assignment_id=task.assignment.id, submit_key="allbad-00001", data=data
        )
        project_id, bad_id = project.id, bad.id
    job = _run(db, project_id, JobIn(selection="all_bad"))
    assert job.progress_total == 1
    with db.session(write=False) as s:
        item = s.get(Item, bad_id)
        assert item is not None and item.round == 1 and item.claims == 0 and item.judgment_count == 0
        rounds = dict(
            s.execute(
                select(Candidate.round, func.count()).where(Candidate.item_id == bad_id).group_by(Candidate.round)
            )
            .tuples()
            .all()
        )
        assert rounds == {0: 2, 1: 2}
        old = set(s.scalars(select(Candidate.text).where(Candidate.item_id == bad_id, Candidate.round == 0)))
        assert old == {"bad one", "bad two"}
    # The same annotator can judge the new round.
    with db.session() as s:
        from app.models import Project, User

        project, user = s.get(Project, project_id), s.scalar(select(User))
        assert project is not None and user is not None
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None and task.item.id == bad_id and task.assignment.round == 1
