"""Storing a batch of first candidates at once (the generation committer's path), on both databases."""

from __future__ import annotations

from sqlalchemy import select

from app.db import Database
from app.generation import store
from app.generation.client import Sample
from app.models import Candidate, Item
from tests.factories import make_item, make_project


def _samples(tag: str, k: int = 2, **extra: object) -> list[Sample]:
    return [
        Sample(
            text=f"{tag} answer {i}\x00",
            model="m",
            base_url="http://127.0.0.1:1",
            params={"temperature": 1.0, "n_index": i},
            seed=7,
            finish_reason="stop",
            prompt_tokens=3,
            completion_tokens=4,
            latency_ms=12.345,
            **extra,  # type: ignore[arg-type]
        )
        for i in range(k)
    ]


def test_a_batch_stores_the_pending_items_and_skips_the_done_ones(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "st", k=2)
        pending = [make_item(s, project, candidates=[]) for _ in range(3)]
        done = make_item(s, project)  # already has candidates (another worker stored it)
        ids = [i.id for i in pending]
        done_id = done.id
    batch = [(ids[0], 0, _samples("a", model_id=None, weights_sha256="ab" * 32)), (ids[1], 0, _samples("b"))]
    batch += [(done_id, 0, _samples("late")), (ids[2], 5, _samples("wrong round"))]
    with db.session() as s:
        stored = store.store_first(s, batch)
    assert stored == {ids[0], ids[1]}
    with db.session(write=False) as s:
        statuses = dict(s.execute(select(Item.id, Item.status).where(Item.id.in_([*ids, done_id]))).tuples().all())
        rows = s.scalars(select(Candidate).where(Candidate.item_id.in_(ids)).order_by(Candidate.id)).all()
        late = s.scalars(select(Candidate.text).where(Candidate.item_id == done_id)).all()
    assert statuses == {ids[0]: "ready", ids[1]: "ready", ids[2]: "pending", done_id: "ready"}
    assert [(r.item_id, r.position, r.text) for r in rows] == [
        (ids[0], 0, "a answer 0\ufffd"),
        (ids[0], 1, "a answer 1\ufffd"),
        (ids[1], 0, "b answer 0\ufffd"),
        (ids[1], 1, "b answer 1\ufffd"),
    ]
    assert rows[0].weights_sha256 == "ab" * 32 and rows[2].weights_sha256 is None
    assert rows[0].latency_ms == 12.3 and rows[0].params == {"temperature": 1.0, "n_index": 0}
    assert "late answer 0\ufffd" not in late


def test_an_empty_batch_stores_nothing(db: Database) -> None:
    with db.session() as s:
        assert store.store_first(s, []) == set()
