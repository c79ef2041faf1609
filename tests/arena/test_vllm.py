"""An arena generated on the real vLLM server (CPU build, tiny random model).

Both registered models are the same endpoint (one server, served name ``tiny-sft``) registered twice, under two
names with two weight digests: the server cannot be made to serve two models here, and the arena only needs two
model ids on two choices. Sampling at temperature 1 gives different answers; at temperature 0 every answer is
the same, which exercises the identical-answer rule on real output."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.arena import service
from app.arena.schemas import ArenaIn
from app.db import Database
from app.jobs import runner
from app.models import Candidate, Item, Job, Project, ProjectMember, RegisteredModel
from tests.factories import make_project, make_user
from tests.support.vllm import MODEL_NAME

# The session's vLLM server may start in this module's first test: on a busy machine that takes minutes.
pytestmark = pytest.mark.timeout(1500)

PROMPTS = "\n".join(
    ["Name a colour.", '{"prompt": [{"role": "user", "content": "Say hello."}]}', "Count to three.", "Why?"]
)


def _arena_on_vllm(db: Database, base: str, *, temperature: float) -> tuple[int, list[int]]:
    with db.session() as s:
        annotator = make_user(s, f"ann-{temperature}")
        parent = make_project(
            s, f"p{int(temperature)}", members=[annotator], generation={"max_tokens": 8, "temperature": temperature}
        )
        models = [
            RegisteredModel(project_id=parent.id, name=n, base_url=base, served_name=MODEL_NAME, weights_sha256=h)
            for n, h in (("sft", "1" * 64), ("dpo-r1", "2" * 64))
        ]
        s.add_all(models)
        s.flush()
        ids = [m.id for m in models]
        data = ArenaIn(name="sft vs dpo", model_ids=ids, prompts=PROMPTS, overlap=1)
        arena, job = service.create_arena(s, parent=parent, data=data, user=None)
        arena_id, job_id = arena.id, job.id
    assert runner.run_one(db, worker_id="test") == (job_id, "done")
    with db.session() as s:
        assert service.open_arena(s, arena_id=arena_id)
    return arena_id, ids


def test_one_answer_per_model_recorded_and_blinded(db: Database, vllm_base_url: str) -> None:
    arena_id, ids = _arena_on_vllm(db, vllm_base_url, temperature=1.0)
    with db.session(write=False) as s:
        arena = s.get(Project, arena_id)
        assert arena is not None and arena.arena["identical"]["count"] == 0
        items = s.scalars(select(Item).where(Item.project_id == arena_id)).all()
        assert len(items) == 4 and {i.status for i in items} == {"ready"}
        cands = s.scalars(select(Candidate).join(Item).where(Item.project_id == arena_id)).all()
        per_item: dict[int, list[Candidate]] = {}
        for c in cands:
            per_item.setdefault(c.item_id, []).append(c)
        for answers in per_item.values():
            assert sorted(c.model_id for c in answers) == sorted(ids)  # one candidate per model
            assert {c.model_id: c.weights_sha256 for c in answers} == {ids[0]: "1" * 64, ids[1]: "2" * 64}
            assert all(c.model == MODEL_NAME and c.base_url == vllm_base_url and c.text for c in answers)
        job = s.get(Job, arena.arena["job_id"])
        assert job is not None and job.result["candidates"] == 8
        assert s.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == arena_id)).all()


def test_identical_answers_are_ties_not_asked(db: Database, vllm_base_url: str) -> None:
    arena_id, _ = _arena_on_vllm(db, vllm_base_url, temperature=0.0)
    with db.session(write=False) as s:
        arena = s.get(Project, arena_id)
        assert arena is not None
        # Greedy decoding of one model under two names: every prompt's answers are the same, so none is asked.
        assert arena.arena["identical"]["count"] == 4
        assert s.scalars(select(Item.id).where(Item.project_id == arena_id)).all() == []
