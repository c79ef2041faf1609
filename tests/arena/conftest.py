"""Fixtures for the arena: a parent project with prompts, a ready snapshot, two served models, users and tokens."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from app.arena import service
from app.arena.schemas import ArenaIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.export.pairs import split_of
from app.generation.client import Sample
from app.generation.service import store_candidates
from app.models import Item, Job, Project, RegisteredModel, Snapshot, User
from tests.factories import make_item, make_project, make_user

TEST_SHARE = 0.5


@dataclass
class World:
    parent_id: int
    other_id: int
    snapshot_id: int
    model_ids: list[int]
    admin: User
    annotators: list[User]
    tokens: dict[str, str]
    test_item_ids: list[int]


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    with db.session() as s:
        admin = make_user(s, "chief", role="admin")
        annotators = [make_user(s, f"ann{i}") for i in range(3)]
        parent = make_project(s, "dpo", members=annotators, guidelines="Be fair.", generation={"max_tokens": 16})
        other = make_project(s, "elsewhere")
        items = [make_item(s, parent, f"held-out question {i}?") for i in range(30)]
        snapshot = Snapshot(project_id=parent.id, state="ready", filters={"test_share": TEST_SHARE}, name="s1")
        s.add(snapshot)
        models = [
            RegisteredModel(
                project_id=parent.id,
                name=name,
                kind=kind,
                base_url="http://127.0.0.1:9",
                served_name=sn,
                weights_sha256=digest,
            )
            for name, kind, sn, digest in (
                ("sft-base", "sft", "tiny-sft", "a" * 64),
                ("dpo-r1", "checkpoint", "tiny-dpo", "b" * 64),
            )
        ]
        s.add_all(models)
        s.add(RegisteredModel(project_id=parent.id, name="unserved", kind="other"))
        s.flush()
        tokens = {
            "export": create_api_token(s, user=admin, scope="export", settings=settings, project_id=parent.id)[1],
            "other": create_api_token(s, user=admin, scope="export", settings=settings, project_id=other.id)[1],
            "annotator_api": create_api_token(s, user=annotators[0], scope="api", settings=settings)[1],
        }
        test_ids = [i.id for i in items if split_of(parent.slug, i.id, TEST_SHARE) == "test"]
        world = World(parent.id, other.id, snapshot.id, [m.id for m in models], admin, annotators, tokens, test_ids)
        for user in (admin, *annotators):
            s.expunge(user)
    return world


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_arena(db: Database, world: World, **fields: object) -> int:
    data = {"name": "SFT vs DPO", "model_ids": world.model_ids, "snapshot_id": world.snapshot_id, **fields}
    with db.session() as s:
        parent = s.get(Project, world.parent_id)
        assert parent is not None
        arena, _ = service.create_arena(s, parent=parent, data=ArenaIn.model_validate(data), user=None)
        return arena.id


def generate_planted(db: Database, arena_id: int, *, identical: set[int] = frozenset(), seed: int = 0) -> list[int]:
    """What the generation job stores (one answer per model, in the models' order), without a model server:
    items whose index is in ``identical`` get the same answer from every model. Marks the job done."""
    rng = random.Random(seed)
    with db.session() as s:
        arena = s.get(Project, arena_id)
        assert arena is not None
        item_ids = sorted(i.id for i in s.query(Item).filter(Item.project_id == arena_id))
        for n, item_id in enumerate(item_ids):
            samples = [
                Sample(
                    text="same answer" if n in identical else f"answer of model {mid} #{rng.random():.6f}",
                    model=f"served-{mid}",
                    base_url="http://127.0.0.1:9",
                    params={},
                    seed=n,
                    finish_reason="stop",
                    prompt_tokens=1,
                    completion_tokens=1,
                    latency_ms=1.0,
                    model_id=mid,
                    weights_sha256=None,
                )
                for mid in arena.arena["model_ids"]
            ]
            assert store_candidates(s, item_id=item_id, from_round=0, regenerate=False, samples=samples)
        s.execute(update(Job).where(Job.id == arena.arena["job_id"]).values(state="done"))
    return item_ids
