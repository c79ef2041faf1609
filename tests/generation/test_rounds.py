"""On-policy rounds against the real vLLM server: a round from a registered model, mixing in the previous policy,
and a job that keeps its model whatever the project's settings say by the time it runs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select

from app.db import Database
from app.generation import service
from app.generation.schemas import JobIn
from app.jobs import runner
from app.models import Candidate, Item, Job, Project, RegisteredModel
from tests.factories import make_item, make_project
from tests.support.vllm import MODEL_NAME

SFT_HASH, DPO_HASH = "a1" * 32, "b2" * 32


def _registered(s: Any, project: Project, name: str, base: str, digest: str, kind: str = "checkpoint") -> int:
    model = RegisteredModel(
        project_id=project.id, name=name, kind=kind, base_url=base, served_name=MODEL_NAME, weights_sha256=digest
    )
    s.add(model)
    s.flush()
    return model.id


def _start(db: Database, project_id: int, request: JobIn) -> int:
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        return service.start_job(s, project=project, request=request, user_id=None).id


def _run(db: Database, job_id: int) -> Job:
    assert runner.run_one(db, worker_id="test") == (job_id, "done")
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.error is None, job and job.result
        return job


def _current(db: Database, project_id: int) -> dict[int, list[tuple[int, int | None, str | None]]]:
    """Item id → (round, model id, weights digest) of each current-round candidate, by position."""
    with db.session(write=False) as s:
        rows = s.execute(
            select(Item.id, Candidate.round, Candidate.model_id, Candidate.weights_sha256)
            .join(Candidate, (Candidate.item_id == Item.id) & (Candidate.round == Item.round))
            .where(Item.project_id == project_id)
            .order_by(Item.id, Candidate.position)
        ).tuples()
        out: dict[int, list[tuple[int, int | None, str | None]]] = {}
        for item_id, round_, model_id, digest in rows:
            out.setdefault(item_id, []).append((round_, model_id, digest))
        return out


def _project(db: Database, base: str, *, k: int, slug: str) -> tuple[int, int, int, list[int]]:
    """A project whose settings name the vLLM server, with two registered models on it (sft, dpo) and
    four items with round-0 candidates written by no registered model, one pending item and one gold item."""
    settings = {"base_urls": [base], "model": MODEL_NAME, "max_tokens": 12, "temperature": 1.0}
    with db.session() as s:
        project = make_project(s, slug, k=k, overlap=1, generation=settings)
        items = [make_item(s, project, f"Round question {i}?") for i in range(4)]
        make_item(s, project, "A fresh prompt?", candidates=[], external_id="fresh")
        gold = make_item(s, project, "Gold prompt?")
        gold.is_gold = True
        sft = _registered(s, project, "sft", base, SFT_HASH, kind="sft")
        dpo = _registered(s, project, "dpo-r1", base, DPO_HASH)
        return project.id, sft, dpo, [i.id for i in items]


def test_round_from_a_registered_model_then_mixing_in_the_previous_policy(db: Database, vllm_base_url: str) -> None:
    project_id, sft, dpo, items = _project(db, vllm_base_url, k=3, slug="rounds")

    # Round 1 from the SFT model: every ready item but the gold one, each into a new round.
    job = _run(db, _start(db, project_id, JobIn(selection="all_ready", model_id=sft)))
    assert job.params["settings"]["model_id"] == sft and job.params["settings"]["weights_sha256"] == SFT_HASH
    assert [m["model_id"] for m in job.params["models"]] == [sft]
    current = _current(db, project_id)
    for item_id in items:
        assert current[item_id] == [(1, sft, SFT_HASH)] * 3
    with db.session(write=False) as s:
        gold_round = s.scalar(select(Item.round).where(Item.project_id == project_id, Item.is_gold.is_(True)))
        pending = s.scalar(select(Item.status).where(Item.project_id == project_id, Item.external_id == "fresh"))
    assert gold_round == 0 and pending == "pending"

    # Round 2 from the DPO checkpoint, mixing in the current policy (the SFT model wrote round 1).
    job = _run(db, _start(db, project_id, JobIn(selection="ids", item_ids=items[:2], model_id=dpo, mix_previous=True)))
    assert {(m["role"], m["model_id"]) for m in job.params["models"]} == {("round", dpo), ("previous", sft)}
    current = _current(db, project_id)
    for item_id in items[:2]:
        assert Counter(current[item_id]) == Counter({(2, dpo, DPO_HASH): 2, (2, sft, SFT_HASH): 1})
    assert current[items[2]] == [(1, sft, SFT_HASH)] * 3  # not chosen: still on round 1

    # The fresh prompt batch from the DPO checkpoint: the pending item gets its first candidates.
    _run(db, _start(db, project_id, JobIn(selection="missing", model_id=dpo)))
    with db.session(write=False) as s:
        fresh = s.scalar(select(Item.id).where(Item.project_id == project_id, Item.external_id == "fresh"))
    assert fresh is not None and _current(db, project_id)[fresh] == [(0, dpo, DPO_HASH)] * 3


def test_mixing_with_no_registered_policy_takes_the_settings_model(db: Database, vllm_base_url: str) -> None:
    project_id, _, dpo, items = _project(db, vllm_base_url, k=2, slug="mixed")
    job = _run(db, _start(db, project_id, JobIn(selection="ids", item_ids=items, model_id=dpo, mix_previous=True)))
    previous = next(m for m in job.params["models"] if m["role"] == "previous")
    assert previous["model_id"] is None and previous["model"] == MODEL_NAME and previous["name"] is None
    for item_id in items:
        assert Counter(_current(db, project_id)[item_id]) == Counter({(1, dpo, DPO_HASH): 1, (1, None, None): 1})


def test_a_queued_round_keeps_its_model_when_the_settings_change(db: Database, vllm_base_url: str) -> None:
    project_id, _, dpo, items = _project(db, vllm_base_url, k=2, slug="resume")
    job_id = _start(db, project_id, JobIn(selection="all_ready", model_id=dpo))
    with db.session() as s:  # the settings now point at a server that is not there, and at another model
        project = s.get(Project, project_id)
        job = s.get(Job, job_id)
        assert project is not None and job is not None
        project.generation = {**project.generation, "base_urls": ["http://127.0.0.1:9"], "model": "gone"}
        settings = service.job_settings(project, job)
        assert (settings.base_urls, settings.model, settings.model_id) == ([vllm_base_url], MODEL_NAME, dpo)
    job = _run(db, job_id)
    assert job.result["candidates"] == 2 * len(items)
    for item_id in items:
        assert _current(db, project_id)[item_id] == [(1, dpo, DPO_HASH)] * 2
