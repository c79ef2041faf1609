"""The effort simulator (bench/effort.py) at tiny sizes: its planted judge, its scoring, and a run of both arms
through the queue and submit services."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import func, select

from app.annotation.queue import Task
from app.annotation.schemas import VerdictIn
from app.db import Database
from app.export.pairs import FIRST, SECOND
from app.models import Item, Judgment, Suggestion, User
from bench.effort import (
    CONFIDENT,
    DIMENSION_KEYS,
    JUDGE_ACCURACY,
    Arm,
    JudgeAnswer,
    Planted,
    empty_queue,
    make_project,
    plant,
    run_seed,
    score,
)
from tests.factories import make_user


def _world(utility: list[dict[str, tuple[float, float]]], judge: list[dict[str, JudgeAnswer]]) -> Planted:
    return Planted(seed=0, utility=utility, judge=judge)


def _everywhere(first: float, second: float) -> dict[str, tuple[float, float]]:
    return dict.fromkeys(DIMENSION_KEYS, (first, second))


UNSURE = JudgeAnswer(picks=(0, 1), q=0.9)


def _picking(choice: dict[str, int]) -> Callable[[User, Task], dict[str, VerdictIn]]:
    """Each annotator (by username) picks a fixed position on every item and dimension ("tie" as -1)."""

    def answer(user: User, task: Task) -> dict[str, VerdictIn]:
        pick = choice[user.username]
        if pick < 0:
            return {dim: VerdictIn(kind="tie") for dim in DIMENSION_KEYS}
        by_position = {c.position: c.id for c in task.candidates}
        verdict = VerdictIn(kind="preference", chosen=by_position[pick], rejected=by_position[1 - pick])
        return dict.fromkeys(DIMENSION_KEYS, verdict)

    return answer


def _run(db: Database, world: Planted, arm: Arm, choice: dict[str, int]) -> int:
    with db.session() as s:
        project, _ = make_project(s, world, arm, f"effort-{arm.name}")
        users = [make_user(s, name) for name in choice]
        empty_queue(s, project=project, users=users, answer=_picking(choice), turns=np.random.default_rng(0))
        return project.id


def test_accuracy_is_the_share_of_pairs_whose_majority_is_the_truth(db: Database) -> None:
    # Item 0: position 0 better on every dimension; item 1: position 1 better. Two of three annotators pick 0.
    world = _world([_everywhere(1.0, 0.0), _everywhere(0.0, 1.0)], [dict.fromkeys(DIMENSION_KEYS, UNSURE)] * 2)
    project_id = _run(db, world, Arm(name="flat", overlap=3), {"ann": 0, "bea": 0, "cy": 1})
    outcome = score(db, world, project_id)
    assert outcome.judgments == 6
    assert outcome.per_item == {3: 2}
    assert outcome.accuracy == 0.5  # item 0's four pairs right, item 1's wrong
    assert outcome.by_dimension == dict.fromkeys(DIMENSION_KEYS, 0.5)
    assert outcome.with_judge == 0.5  # every pair has a human label: the judge is not asked


def test_unlabelled_pairs_count_wrong_and_a_confident_judge_fills_them(db: Database) -> None:
    # Two annotators disagree everywhere: the export's majority labels nothing. The judge is sure and confident on
    # item 0 (right), sure but below CONFIDENT on item 1, unsure on item 2.
    right = JudgeAnswer(picks=(0, 0), q=0.95)
    timid = JudgeAnswer(picks=(0, 0), q=CONFIDENT - 0.1)
    judge = [dict.fromkeys(DIMENSION_KEYS, a) for a in (right, timid, UNSURE)]
    world = _world([_everywhere(1.0, 0.0)] * 3, judge)
    project_id = _run(db, world, Arm(name="flat", overlap=2), {"ann": 0, "bea": 1})
    outcome = score(db, world, project_id)
    assert outcome.judgments == 6
    assert outcome.accuracy == 0.0
    assert outcome.with_judge == pytest.approx(1 / 3)


def test_a_tie_vote_as_strong_as_the_winner_leaves_the_pair_unlabelled(db: Database) -> None:
    world = _world([_everywhere(1.0, 0.0)], [dict.fromkeys(DIMENSION_KEYS, UNSURE)])
    tied = score(db, world, _run(db, world, Arm(name="tied", overlap=2), {"ann": 0, "bea": -1}))
    assert tied.accuracy == 0.0


def test_suggestions_and_judge_confidence_are_stored_as_the_judge_answered(db: Database) -> None:
    answers = {
        dim: JudgeAnswer(picks=(0, 0), q=0.9) if n % 2 else JudgeAnswer(picks=(1, 0), q=0.7)
        for n, dim in enumerate(DIMENSION_KEYS)
    }
    world = _world([_everywhere(1.0, 0.0)], [answers])
    with db.session() as s:
        project, number = make_project(s, world, Arm(name="flat", overlap=3), "effort-suggest")
        (item_id,) = number
        rows = s.scalars(select(Suggestion).where(Suggestion.item_id == item_id)).all()
        item = s.get(Item, item_id)
        assert item is not None
        assert {r.dimension: r.kind for r in rows} == {
            dim: "preference" if n % 2 else "unsure" for n, dim in enumerate(DIMENSION_KEYS)
        }
        for r in rows:
            assert len(r.orders) == 2
            if r.kind == "preference":
                assert r.confidence == pytest.approx(0.9)
                assert (r.chosen_candidate_id, r.rejected_candidate_id) == tuple(r.orders[0]["shown"])
                assert [o["answer"] for o in r.orders] == ["A", "B"]  # position 0 in both orders
            else:
                assert r.confidence == 0.0 and r.chosen_candidate_id is None
        assert item.judge_confidence == pytest.approx(0.9 * 2 / len(DIMENSION_KEYS))
        assert project.judge["judges"][0]["model"] in rows[0].judge


def test_the_planted_judge_is_as_accurate_as_set_and_surer_when_right() -> None:
    world = plant(seed=3, items=3000)
    accuracy = {}
    for dim in DIMENSION_KEYS:
        answers = [(world.judge[n][dim], world.truth(n, dim)) for n in range(3000)]
        # One order's pick: right with the dimension's accuracy.
        first = np.mean([(FIRST if a.picks[0] == 0 else SECOND) == t for a, t in answers])
        assert first == pytest.approx(JUDGE_ACCURACY[dim], abs=0.03)
        accuracy[dim] = first
        sure = [(a.q, (FIRST if a.picks[0] == 0 else SECOND) == t) for a, t in answers if a.sure]
        confident = [hit for q, hit in sure if q >= CONFIDENT]
        doubtful = [hit for q, hit in sure if q < CONFIDENT]
        assert np.mean(confident) > np.mean(doubtful)
    assert accuracy["helpful"] > accuracy["harmless"] > accuracy["honest"]


@pytest.mark.timeout(300)
def test_both_arms_run_through_the_queue_on_the_same_world(db: Database) -> None:
    flat = Arm(name="flat", overlap=3)
    adaptive = Arm(name="adaptive", overlap=4, overlap_min=1, queue_order="uncertain_first")
    a, b = run_seed(db, seed=1, items=16, annotators=6, arms=[flat, adaptive])
    assert a.judgments == 48 and a.per_item == {3: 16}
    assert set(b.per_item) <= {1, 2, 3, 4} and sum(b.per_item.values()) == 16
    assert b.judgments == sum(n * items for n, items in b.per_item.items())
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == a.judgments + b.judgments
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 2 * 16 * len(DIMENSION_KEYS)
        assert s.scalar(select(func.count()).select_from(Item).where(Item.judge_confidence.is_(None))) == 0
    for outcome in (a, b):
        assert 0.0 <= outcome.accuracy <= outcome.with_judge <= 1.0
