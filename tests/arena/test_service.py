"""Making an arena, and opening it once generated: blinded candidates, identical answers set aside, members in."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.arena import service
from app.arena.schemas import ArenaIn
from app.db import Database
from app.generation.service import job_settings
from app.kit.errors import Invalid
from app.models import Candidate, Item, Job, Project, ProjectMember
from tests.arena.conftest import World, generate_planted, make_arena


def test_arena_from_a_snapshots_test_split(db: Database, world: World) -> None:
    arena_id = make_arena(db, world, overlap=2)
    with db.session(write=False) as s:
        arena = s.get(Project, arena_id)
        parent = s.get(Project, world.parent_id)
        assert arena is not None and parent is not None
        assert (arena.kind, arena.parent_id, arena.k, arena.overlap) == ("arena", parent.id, 2, 2)
        assert arena.dimensions == parent.dimensions and arena.guidelines == "Be fair."
        assert arena.arena["model_ids"] == world.model_ids
        assert arena.arena["prompts"] == {"snapshot_id": world.snapshot_id, "split": "test"}
        items = s.scalars(select(Item).where(Item.project_id == arena_id)).all()
        assert 0 < len(items) < 30
        assert sorted(i.meta["source_item_id"] for i in items) == sorted(world.test_item_ids)
        assert {i.status for i in items} == {"pending"}
        # No member until the arena opens.
        assert s.scalar(select(func.count()).where(ProjectMember.project_id == arena_id)) == 0
        job = s.get(Job, arena.arena["job_id"])
        assert job is not None and job.kind == "generate" and job.state == "queued"
        settings = job_settings(arena, job)
        assert settings.strategy == "per_model" and settings.max_tokens == 16  # the parent's sampling kept
        assert [(m.model, m.model_id, m.weights_sha256) for m in settings.models] == [
            ("tiny-sft", world.model_ids[0], "a" * 64),
            ("tiny-dpo", world.model_ids[1], "b" * 64),
        ]
        assert job.params["settings"]["models"][0]["base_url"] == "http://127.0.0.1:9"


def test_arena_from_imported_prompts(db: Database, world: World) -> None:
    text = '{"prompt": "First?", "id": "q1"}\nSecond, plain?\n\n{"prompt": [{"role": "user", "content": "Third?"}]}\n'
    arena_id = make_arena(db, world, snapshot_id=None, prompts=text + "second,   PLAIN?\n")
    with db.session(write=False) as s:
        items = s.scalars(select(Item).where(Item.project_id == arena_id).order_by(Item.id)).all()
        assert [i.prompt for i in items] == ["First?", "Second, plain?", [{"role": "user", "content": "Third?"}]]
        assert items[0].external_id == "q1"
        arena = s.get(Project, arena_id)
        assert arena is not None and arena.arena["prompts"] == {"imported": True}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompts": 'ok\n{"prompt": 3}\n{bad\n', "snapshot_id": None}, "2 line(s) have errors"),
        ({"model_ids": "unserved"}, "without a serving endpoint"),
        ({"model_ids": [999, 998]}, "not registered in this project"),
    ],
)
def test_bad_requests_leave_nothing(db: Database, world: World, fields: dict[str, object], message: str) -> None:
    if fields.get("model_ids") == "unserved":
        with db.session(write=False) as s:
            from app.models import RegisteredModel

            unserved = s.scalar(select(RegisteredModel.id).where(RegisteredModel.name == "unserved"))
        fields = {**fields, "model_ids": [world.model_ids[0], unserved]}
    with pytest.raises(Invalid) as caught:
        make_arena(db, world, **fields)
    assert message in str(caught.value.detail)
    if "line" in message:
        assert [e["line"] for e in caught.value.detail["errors"]] == [2, 3]
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).where(Project.kind == "arena")) == 0


def test_request_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="either snapshot_id or prompts"):
        ArenaIn(name="x", model_ids=[1, 2], snapshot_id=1, prompts="a")
    with pytest.raises(ValueError, match="once"):
        ArenaIn(name="x", model_ids=[1, 1], snapshot_id=1)
    with pytest.raises(ValueError, match="at most 4"):
        ArenaIn(name="x", model_ids=[1, 2, 3, 4, 5], snapshot_id=1)


def test_opening_blinds_sets_identical_aside_and_lets_members_in(db: Database, world: World) -> None:
    arena_id = make_arena(db, world, snapshot_id=None, prompts="\n".join(f"prompt {i}" for i in range(24)))
    with db.session() as s:
        assert not service.open_arena(s, arena_id=arena_id)  # still generating
    item_ids = generate_planted(db, arena_id, identical={0, 5})
    with db.session(write=False) as s:
        before = {(c.item_id, c.model_id): c.text for c in s.scalars(select(Candidate))}
    with db.session() as s:
        assert service.open_arena(s, arena_id=arena_id)
        assert not service.open_arena(s, arena_id=arena_id)  # once
    with db.session(write=False) as s:
        arena = s.get(Project, arena_id)
        assert arena is not None and arena.arena["opened"]
        assert arena.arena["identical"]["count"] == 2
        assert {e["item_id"] for e in arena.arena["identical"]["listed"]} == {item_ids[0], item_ids[5]}
        left = set(s.scalars(select(Item.id).where(Item.project_id == arena_id)))
        assert left == set(item_ids) - {item_ids[0], item_ids[5]}
        members = set(s.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == arena_id)))
        assert members == {u.id for u in world.annotators}
        cands = s.scalars(select(Candidate).join(Item).where(Item.project_id == arena_id)).all()
    # Every answer still belongs to its model, but which model sits first (lowest id, position 0) varies by item.
    assert {(c.item_id, c.model_id): c.text for c in cands} == {
        key: text for key, text in before.items() if key[0] in left
    }
    first = {c.model_id for c in cands if c.position == 0}
    assert first == set(world.model_ids)
    by_id = sorted(cands, key=lambda c: c.id)
    assert [c.position for c in by_id] == [p for _ in left for p in (0, 1)]


def test_arenas_of_a_parent(db: Database, world: World) -> None:
    first = make_arena(db, world, name="one")
    second = make_arena(db, world, name="one")
    with db.session(write=False) as s:
        parent = s.get(Project, world.parent_id)
        assert parent is not None
        arenas = service.arenas_of(s, parent=parent)
        assert [a.id for a in arenas] == [second, first]
        assert arenas[0].slug != arenas[1].slug and arenas[1].slug.startswith("dpo-one")
        assert service.unopened_ids(s, parent_id=parent.id) == [first, second]


def test_a_partial_duplicate_is_asked_and_still_points_at_its_twin(db: Database, world: World) -> None:
    from sqlalchemy import update

    from app.generation.client import Sample
    from app.generation.service import store_candidates
    from app.models import RegisteredModel

    with db.session() as s:
        third = RegisteredModel(
            project_id=world.parent_id, name="dpo-r2", base_url="http://127.0.0.1:9", served_name="x"
        )
        s.add(third)
        s.flush()
        ids = [*world.model_ids, third.id]
    arena_id = make_arena(db, world, model_ids=ids, snapshot_id=None, prompts="\n".join(f"q{i}" for i in range(8)))
    with db.session() as s:
        arena = s.get(Project, arena_id)
        assert arena is not None and arena.k == 3
        for item_id in s.scalars(select(Item.id).where(Item.project_id == arena_id)):
            texts = [f"first {item_id}", f"second {item_id}", f"first  {item_id}"]  # the third repeats the first
            samples = [
                Sample(
                    text=t,
                    model="m",
                    base_url="u",
                    params={"duplicate_of": 0} if p == 2 else {},
                    seed=p,
                    finish_reason="stop",
                    prompt_tokens=1,
                    completion_tokens=1,
                    latency_ms=1.0,
                    model_id=mid,
                )
                for p, (t, mid) in enumerate(zip(texts, ids, strict=True))
            ]
            assert store_candidates(s, item_id=item_id, from_round=0, regenerate=False, samples=samples)
        s.execute(update(Job).where(Job.id == arena.arena["job_id"]).values(state="done"))
    with db.session() as s:
        assert service.open_arena(s, arena_id=arena_id)
    with db.session(write=False) as s:
        cands = s.scalars(select(Candidate).join(Item).where(Item.project_id == arena_id)).all()
        assert len(cands) == 24  # not all identical: every item is asked
        at = {(c.item_id, c.position): c for c in cands}
        twins = [c for c in cands if "duplicate_of" in c.params]
        assert len(twins) == 8 and {c.model_id for c in twins} == {ids[2]}
        for c in twins:
            assert at[(c.item_id, c.params["duplicate_of"])].model_id == ids[0]


def test_an_arena_whose_generation_failed_stays_closed(db: Database, world: World) -> None:
    from sqlalchemy import update

    from app.arena.leaderboard import state_of

    arena_id = make_arena(db, world)
    with db.session() as s:
        arena = s.get(Project, arena_id)
        assert arena is not None
        s.execute(update(Job).where(Job.id == arena.arena["job_id"]).values(state="failed"))
    with db.session() as s:
        assert not service.open_arena(s, arena_id=arena_id)
        arena, parent = s.get(Project, arena_id), s.get(Project, world.parent_id)
        assert arena is not None and parent is not None
        assert state_of(s, arena=arena, parent=parent) == "failed"
        assert s.scalar(select(func.count()).where(ProjectMember.project_id == arena_id)) == 0
