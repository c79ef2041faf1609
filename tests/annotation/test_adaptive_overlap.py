"""Adaptive overlap: an item gets r_min judgments, and one more at a time, up to r_max, while they disagree (a vote
margin below the project's, or a majority against a confident judge)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import edit_judgment, submit_judgment
from app.annotation.overlap import (
    JUDGE_CONFIDENT,
    answer_of,
    effective_target,
    majority_answer,
    should_reopen,
    vote_margin,
)
from app.annotation.progress import progress, project_counts_cache
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.db import Database
from app.models import Candidate, Item, Project, Suggestion, User
from app.projects.service import counts
from tests.factories import make_items, make_project, make_user

JUDGE = {"judges": [{"model": "judge-model", "base_url": "http://judge:8000/v1"}]}


# --- the rule on plain values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "margin"),
    [
        ([], 1.0),
        ([7], 1.0),
        ([7, 7], 1.0),
        ([7, 8], 0.0),
        ([7, 7, 8], 1 / 3),
        ([7, "tie", 8], 0.0),
        ([7, 7, 7, 8], 0.5),
        ([(7, 8), (7, 8), 9], 1 / 3),
    ],
)
def test_vote_margin(answers: list[object], margin: float) -> None:
    assert vote_margin(answers) == pytest.approx(margin)


@pytest.mark.parametrize(
    ("kind", "chosen", "tiers", "answer"),
    [
        ("preference", 5, None, 5),
        ("tie", None, None, "tie"),
        ("na", None, None, None),
        ("unsure", None, None, None),
        ("ranking", None, [[3], [1, 2]], 3),
        ("ranking", None, [[2, 1], [3]], (1, 2)),  # several share the top tier: that tier is the answer
        ("ranking", None, [[1, 2, 3]], "tie"),
    ],
)
def test_answer_of(kind: str, chosen: int | None, tiers: list[list[int]] | None, answer: object) -> None:
    assert answer_of(kind, chosen, tiers) == answer


def test_should_reopen_on_any_dimension_or_against_a_confident_judge() -> None:
    agreeing = {"overall": [1, 1], "helpful": [1, 1]}
    assert not should_reopen(agreeing, {}, margin=0.5)
    assert should_reopen({"overall": [1, 1], "helpful": [1, 2]}, {}, margin=0.5)  # one dimension is enough
    assert should_reopen(agreeing, {"helpful": 2}, margin=0.5)  # the judge says otherwise
    assert not should_reopen(agreeing, {"helpful": 1}, margin=0.5)
    assert not should_reopen({"overall": [1, 1, 2]}, {}, margin=0.3)  # margin 1/3 is not below 0.3
    assert should_reopen({"overall": [1, 1, 2]}, {}, margin=0.5)
    assert majority_answer([1, 2]) is None and majority_answer([1, 2, 2]) == 2


def test_effective_target_stays_within_r_min_and_r() -> None:
    off = Project(overlap=3, overlap_min=None)
    on = Project(overlap=4, overlap_min=2)
    assert [effective_target(off, t) for t in (None, 1, 5)] == [3, 3, 3]  # not adaptive: targets ignored
    assert [effective_target(on, t) for t in (None, 1, 2, 3, 4, 9)] == [2, 2, 2, 3, 4, 4]


# --- through the queue and the submit path ----------------------------------------------------------------------


def _setup(db: Database, *, annotators: int = 5, items: int = 1, **fields: object) -> tuple[int, list[int]]:
    with db.session() as s:
        users = [make_user(s, f"ad-{i}") for i in range(annotators)]
        fields = {"overlap": 4, "overlap_min": 2, "adaptive_margin": 0.5, "gold_share": 0.0, **fields}
        project = make_project(s, "adaptive", k=2, members=users, **fields)
        make_items(s, project, items)
        return project.id, [u.id for u in users]


def _judge(db: Database, project_id: int, user_id: int, choice: int) -> int | None:
    """Next item for the user, judged: ``choice`` 0 prefers the first canonical candidate, 1 the second (every
    dimension). Returns the judgment's id, or None when the queue has nothing for them."""
    with db.session() as s:
        project, user = s.get(Project, project_id), s.get(User, user_id)
        assert project is not None and user is not None
        task = assign_next_item(s, project=project, annotator=user)
        if task is None:
            return None
        data = _answer(project, [c.id for c in task.candidates], choice)
        judgment, created = submit_judgment(
            s, project=project, annotator=user, assignment_id=task.assignment.id, submit_key=f"k{user_id}", data=data
        )
        assert created
        return judgment.id


def _answer(project: Project, candidate_ids: list[int], choice: int) -> JudgmentIn:
    first, second = sorted(candidate_ids)
    chosen, rejected = (first, second) if choice == 0 else (second, first)
    verdict = VerdictIn(kind="preference", chosen=chosen, rejected=rejected)
    return JudgmentIn(verdicts=dict.fromkeys(dimension_keys(project), verdict))


def _item(db: Database) -> tuple[int, int | None, int]:
    with db.session(write=False) as s:
        item = s.scalars(select(Item)).one()
        return item.judgment_count, item.target, item.claims


def test_agreeing_votes_complete_the_item_at_r_min(db: Database) -> None:
    project_id, users = _setup(db)
    assert _judge(db, project_id, users[0], 0) is not None
    assert _item(db) == (1, None, 1)
    assert _judge(db, project_id, users[1], 0) is not None
    assert _item(db) == (2, None, 2)
    assert _judge(db, project_id, users[2], 0) is None  # complete: nobody else gets it
    with db.session(write=False) as s:
        project, user = s.get(Project, project_id), s.get(User, users[2])
        assert project is not None and user is not None
        assert counts(s, project=project).fully_judged == 1
        project_counts_cache.clear()
        shown = progress(s, project=project, annotator=user)
        assert (shown.items_done, shown.items_total) == (1, 1)


def test_disagreeing_votes_reopen_the_item_one_at_a_time_up_to_r_max(db: Database) -> None:
    project_id, users = _setup(db)
    _judge(db, project_id, users[0], 0)
    _judge(db, project_id, users[1], 1)  # 1–1: margin 0
    assert _item(db) == (2, 3, 2)
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        assert counts(s, project=project).fully_judged == 0  # reopened: not complete
    _judge(db, project_id, users[2], 0)  # 2–1: margin 1/3, still below 0.5
    assert _item(db) == (3, 4, 3)
    _judge(db, project_id, users[3], 1)  # 2–2 at r_max: stays at r_max
    assert _item(db) == (4, 4, 4)
    assert _judge(db, project_id, users[4], 0) is None  # never more than r_max
    assert _item(db) == (4, 4, 4)


def test_a_margin_at_the_setting_does_not_reopen(db: Database) -> None:
    project_id, users = _setup(db, overlap=5, overlap_min=3, adaptive_margin=0.3)
    for user_id, choice in zip(users, (0, 0, 1), strict=False):
        _judge(db, project_id, user_id, choice)
    assert _item(db) == (3, None, 3)  # margin 1/3 ≥ 0.3: complete at r_min


def test_without_adaptive_overlap_every_item_gets_r(db: Database) -> None:
    project_id, users = _setup(db, overlap=3, overlap_min=None)
    for user_id, choice in zip(users, (0, 1, 0, 1), strict=False):
        _judge(db, project_id, user_id, choice)
    assert _item(db) == (3, None, 3)


def _suggest(db: Database, project_id: int, *, chosen_position: int, confidence: float | None) -> None:
    """A primary judge suggestion on every dimension of the item's current round."""
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        project.judge = JUDGE
        item = s.scalars(select(Item)).one()
        ids = list(s.scalars(select(Candidate.id).where(Candidate.item_id == item.id).order_by(Candidate.position)))
        for dimension in dimension_keys(project):
            s.add(
                Suggestion(
                    project_id=project_id,
                    item_id=item.id,
                    round=item.round,
                    dimension=dimension,
                    judge="judge-model@http://judge:8000/v1",
                    model="judge-model",
                    base_url="http://judge:8000/v1",
                    prompt_version="v1",
                    kind="preference",
                    chosen_candidate_id=ids[chosen_position],
                    rejected_candidate_id=ids[1 - chosen_position],
                    confidence=confidence,
                )
            )


@pytest.mark.parametrize(
    ("confidence", "reopened"), [(0.95, True), (JUDGE_CONFIDENT, True), (0.6, False), (None, False)]
)
def test_a_confident_judge_against_the_majority_reopens(db: Database, confidence: float | None, reopened: bool) -> None:
    project_id, users = _setup(db)
    _suggest(db, project_id, chosen_position=1, confidence=confidence)  # the judge prefers the second
    _judge(db, project_id, users[0], 0)
    _judge(db, project_id, users[1], 0)  # both people prefer the first
    assert _item(db) == (2, 3 if reopened else None, 2)


def test_a_confident_judge_that_agrees_does_not_reopen(db: Database) -> None:
    project_id, users = _setup(db)
    _suggest(db, project_id, chosen_position=0, confidence=0.99)
    _judge(db, project_id, users[0], 0)
    _judge(db, project_id, users[1], 0)
    assert _item(db) == (2, None, 2)


def test_an_edit_that_makes_the_votes_disagree_reopens_a_complete_item(db: Database) -> None:
    project_id, users = _setup(db)
    _judge(db, project_id, users[0], 0)
    second = _judge(db, project_id, users[1], 0)
    assert second is not None and _item(db) == (2, None, 2)
    with db.session() as s:
        project, user = s.get(Project, project_id), s.get(User, users[1])
        assert project is not None and user is not None
        ids = list(s.scalars(select(Candidate.id)))
        edit_judgment(s, project=project, annotator=user, judgment_id=second, version=1, data=_answer(project, ids, 1))
    assert _item(db) == (2, 3, 2)
    assert _judge(db, project_id, users[2], 0) is not None  # the reopened item's third judgment
    # 2–1 now: margin 1/3 reopens it once more, up to r_max
    assert _item(db) == (3, 4, 3)


def test_an_edit_that_makes_the_votes_agree_never_lowers_the_target(db: Database) -> None:
    project_id, users = _setup(db)
    _judge(db, project_id, users[0], 0)
    second = _judge(db, project_id, users[1], 1)
    assert second is not None and _item(db) == (2, 3, 2)
    with db.session() as s:
        project, user = s.get(Project, project_id), s.get(User, users[1])
        assert project is not None and user is not None
        ids = list(s.scalars(select(Candidate.id)))
        edit_judgment(s, project=project, annotator=user, judgment_id=second, version=1, data=_answer(project, ids, 0))
    assert _item(db) == (2, 3, 2)  # a claim may already be on the way for the third judgment


def test_lowering_r_caps_a_reopened_target(db: Database) -> None:
    project_id, users = _setup(db)
    _judge(db, project_id, users[0], 0)
    _judge(db, project_id, users[1], 1)
    assert _item(db) == (2, 3, 2)
    with db.session() as s:
        s.execute(update(Project).where(Project.id == project_id).values(overlap=2))
    assert _judge(db, project_id, users[2], 0) is None  # effective target min(3, r = 2): complete
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        assert counts(s, project=project).fully_judged == 1


def test_raising_r_min_reopens_items_below_it(db: Database) -> None:
    project_id, users = _setup(db)
    _judge(db, project_id, users[0], 0)
    _judge(db, project_id, users[1], 0)
    assert _item(db) == (2, None, 2)
    with db.session() as s:
        s.execute(update(Project).where(Project.id == project_id).values(overlap_min=3))
    assert _judge(db, project_id, users[2], 0) is not None
    assert _item(db) == (3, None, 3)  # 3–0 agree: complete at the new r_min
    assert _judge(db, project_id, users[3], 0) is None


def test_gold_items_are_never_reopened(db: Database) -> None:
    project_id, users = _setup(db, gold_share=0.5)
    with db.session() as s:
        item = s.scalars(select(Item)).one()
        item.is_gold, item.gold = True, {"overall": {"kind": "either"}}
    for user_id, choice in zip(users, (0, 1, 0), strict=False):
        assert _judge(db, project_id, user_id, choice) is not None  # gold: every annotator may get it
    count, target, _ = _item(db)
    assert (count, target) == (3, None)
