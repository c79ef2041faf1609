"""Judge vs people: κ against the human majority, gold accuracy, coverage, the anchoring effect — and the
human-only figures untouched by suggestions. Planted data, both backends."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import select

from app.agreement import judge as trust
from app.agreement import service as agreement
from app.db import Database
from app.models import Candidate, Item, Judgment, Project, Suggestion, User
from tests.factories import make_judgment, make_project, make_user

JUDGE = "big-model@http://judge:8000/v1"
DIMS = [{"key": "helpful", "label": "Helpful", "description": "Useful."}]


def _ids(s: Any, item: Item) -> dict[int, int]:
    rows = s.execute(select(Candidate.position, Candidate.id).where(Candidate.item_id == item.id))
    return dict(rows.tuples().all())


def suggest(s: Any, item: Item, kind: str, chosen: int | None = None, *, dimension: str = "overall", **kw: Any) -> None:
    """A suggestion on ``item``: "preference" for position ``chosen`` over the other (k = 2), "tie" or "unsure"."""
    ids = _ids(s, item)
    pick = {}
    if kind == "preference":
        assert chosen is not None
        pick = {"chosen_candidate_id": ids[chosen], "rejected_candidate_id": ids[1 - chosen]}
    s.add(
        Suggestion(
            project_id=item.project_id,
            item_id=item.id,
            round=item.round,
            dimension=dimension,
            judge=kw.get("judge", JUDGE),
            model="big-model",
            base_url="http://judge:8000/v1",
            prompt_version="v1",
            kind=kind,
            confidence=kw.get("confidence"),
            orders=[],
            **pick,
        )
    )
    s.flush()


def vote(s: Any, item: Item, user: User, chosen: int | None, *, shown: bool | None = None, helpful: int | None = None):
    """A k = 2 judgment: ``chosen`` preferred overall (None: a tie); ``helpful`` likewise on "helpful"."""
    verdicts: dict[str, tuple[str, int | None, int | None]] = {
        "overall": ("preference", chosen, 1 - chosen) if chosen is not None else ("tie", None, None)
    }
    if helpful is not None:
        verdicts["helpful"] = ("preference", helpful, 1 - helpful)
    judgment = make_judgment(s, item, user, verdicts)
    judgment.suggestion_shown = shown
    s.flush()
    return judgment


def _world(s: Any, n: int = 10) -> tuple[Project, list[User], list[Item]]:
    users = [make_user(s, f"u{i}") for i in range(3)]
    project = make_project(s, "t", k=2, overlap=3, members=users, dimensions=DIMS)
    project.judge = {"judges": [{"model": "big-model", "base_url": "http://judge:8000/v1"}]}
    items = []
    for i in range(n):
        item = Item(project_id=project.id, prompt=f"p{i}", prompt_hash=f"h{i}", status="ready")
        s.add(item)
        s.flush()
        for position in range(2):
            s.add(Candidate(item_id=item.id, position=position, text=f"a{position}", model="m"))
        items.append(item)
    s.flush()
    return project, users, items


def test_judge_equal_to_the_majority_everywhere_has_kappa_one(db: Database) -> None:
    with db.session() as s:
        project, users, items = _world(s)
        for n, item in enumerate(items):
            winner = n % 2
            vote(s, item, users[0], winner, helpful=1 - winner)
            vote(s, item, users[1], winner, helpful=1 - winner)
            vote(s, item, users[2], 1 - winner, helpful=winner)  # outvoted
            suggest(s, item, "preference", winner)
            suggest(s, item, "preference", 1 - winner, dimension="helpful")
        s.commit()  # the figures read on connections of their own
        figures = trust.judge_kappa(s, project=project)
        assert figures["overall"].value == 1.0 and figures["overall"].n == 10
        assert figures["overall"].interval is not None
        assert figures["helpful"].value == 1.0 and figures["helpful"].n == 10


def test_known_kappa_on_a_hand_computed_case_and_unsure_left_out(db: Database) -> None:
    with db.session() as s:
        project, users, items = _world(s, 6)
        # Majority (two people agree): first, first, first, second, second, tie … and two unsure suggestions.
        majority = [0, 0, 0, 1, 1, None]
        judge = [0, 0, 1, 1, 0, None]
        for item, m, j in zip(items, majority, judge, strict=True):
            vote(s, item, users[0], m)
            vote(s, item, users[1], m)
            suggest(s, item, "preference", j) if j is not None else suggest(s, item, "tie")
        extra = _world_extra(s, project, users, 2)
        for item in extra:
            suggest(s, item, "unsure")
        # Confusion (judge rows × majority cols, first/second/tie): [[2,1,0],[1,1,0],[0,0,1]], n = 6:
        # p_o = 4/6; p_e = (3·3 + 2·2 + 1·1)/36 = 14/36; κ = (24/36 − 14/36)/(22/36) = 10/22.
        s.commit()  # the figures read on connections of their own
        overall = trust.judge_kappa(s, project=project, resamples=0)["overall"]
        assert overall.n == 6
        assert overall.value == pytest.approx(round(10 / 22, 4))
        assert overall.interval is None
        coverage, unsure = trust.judge_coverage(s, project=project)["overall"]
        assert (coverage.hits, coverage.n) == (6, 8)
        assert (unsure.hits, unsure.n) == (2, 8)


def _world_extra(s: Any, project: Project, users: list[User], n: int) -> list[Item]:
    items = []
    for i in range(n):
        item = Item(project_id=project.id, prompt=f"x{i}", prompt_hash=f"x{i}", status="ready")
        s.add(item)
        s.flush()
        for position in range(2):
            s.add(Candidate(item_id=item.id, position=position, text=f"a{position}", model="m"))
        s.flush()
        vote(s, item, users[0], 0)
        vote(s, item, users[1], 0)
        items.append(item)
    return items


def test_human_ties_have_no_majority(db: Database) -> None:
    with db.session() as s:
        project, users, items = _world(s, 4)
        for item in items:
            vote(s, item, users[0], 0)
            vote(s, item, users[1], 1)  # one each: no majority
            suggest(s, item, "preference", 0)
        s.commit()  # the figures read on connections of their own
        figure = trust.judge_kappa(s, project=project)["overall"]
        assert figure.n == 0 and figure.value is None and figure.interval is None


def test_random_judge_is_near_zero(db: Database) -> None:
    rng = random.Random(7)
    with db.session() as s:
        project, users, items = _world(s, 300)
        for item in items:
            truth = rng.randrange(2)
            vote(s, item, users[0], truth)
            vote(s, item, users[1], truth)
            suggest(s, item, "preference", rng.randrange(2))
        s.commit()  # the figures read on connections of their own
        figure = trust.judge_kappa(s, project=project)["overall"]
        assert figure.n == 300
        assert figure.value is not None and abs(figure.value) < 0.15
        assert figure.interval is not None and figure.interval[0] < 0 < figure.interval[1]


def test_a_second_judge_is_its_own_rater(db: Database) -> None:
    with db.session() as s:
        project, users, items = _world(s, 6)
        for n, item in enumerate(items):
            vote(s, item, users[0], n % 2)
            vote(s, item, users[1], n % 2)
            suggest(s, item, "preference", n % 2)
            suggest(s, item, "preference", 1 - n % 2, judge="other@x")
        s.commit()  # the figures read on connections of their own
        assert trust.judge_kappa(s, project=project)["overall"].value == 1.0
        assert trust.judge_kappa(s, project=project, judge="other@x")["overall"].value == -1.0


def test_gold_accuracy_of_the_judge(db: Database) -> None:
    with db.session() as s:
        project, _, items = _world(s, 5)
        for n, item in enumerate(items):
            item.is_gold = True
            item.gold = {"overall": {"kind": "preference", "chosen": 0, "rejected": 1}, "helpful": {"kind": "either"}}
            suggest(s, item, "preference", 0 if n < 3 else 1)
            suggest(s, item, "preference", 1, dimension="helpful")  # "either": not scored
        s.flush()
        s.commit()  # the figures read on connections of their own
        gold = trust.judge_gold(s, project=project)
        assert set(gold) == {"overall"}
        assert (gold["overall"].hits, gold["overall"].n, gold["overall"].value) == (3, 5, 0.6)
        low, high = gold["overall"].interval or (0, 0)
        assert low < 0.6 < high
        # Gold items stay out of κ.
        assert trust.judge_kappa(s, project=project)["overall"].n == 0


def test_anchoring_shown_vs_hidden(db: Database) -> None:
    with db.session() as s:
        project, users, items = _world(s, 10)
        for item in items:
            suggest(s, item, "preference", 0)
            # Shown: all three agree with the judge. Hidden: one of three does.
        for item in items[:5]:
            for user in users:
                vote(s, item, user, 0, shown=True)
        for item in items[5:]:
            vote(s, item, users[0], 0, shown=False)
            vote(s, item, users[1], 1, shown=False)
            vote(s, item, users[2], 1, shown=False)
        vote(s, items[0], make_user(s, "old"), 1, shown=None)  # unknown: left out
        s.commit()  # the figures read on connections of their own
        effect = trust.anchoring(s, project=project)["overall"]
        assert (effect.shown.hits, effect.shown.n) == (15, 15)
        assert (effect.hidden.hits, effect.hidden.n) == (5, 15)
        assert effect.difference == pytest.approx(round(1 - 5 / 15, 4))
        assert effect.interval is not None and 0 < effect.interval[0] < effect.difference < effect.interval[1] <= 1
        assert trust.anchoring(s, project=project)["helpful"].difference is None


def test_suggestions_leave_human_figures_identical(db: Database) -> None:
    rng = random.Random(3)
    with db.session() as s:
        project, users, items = _world(s, 30)
        for item in items:
            for user in users:
                vote(s, item, user, rng.randrange(2), helpful=rng.randrange(2))
        project_id = project.id
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        before = agreement.compute(s, project=project, resamples=50).model_dump(exclude={"judge"})
    with db.session() as s:
        for item in s.scalars(select(Item).where(Item.project_id == project_id)):
            suggest(s, item, rng.choice(["preference", "unsure"]), rng.randrange(2))
            suggest(s, item, "preference", rng.randrange(2), dimension="helpful")
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        after = agreement.compute(s, project=project, resamples=50).model_dump(exclude={"judge"})
        assert s.scalar(select(Judgment.id).limit(1)) is not None
    human = {k: v for k, v in after.items() if k != "annotators"}
    assert human == {k: v for k, v in before.items() if k != "annotators"}
    people = [a for a in after["annotators"] if not a.get("is_judge")]
    assert people == before["annotators"]
    assert len(after["annotators"]) == len(people) + 1  # the judge's row, beside them


def test_dashboard_figures_carry_the_judge_and_its_row(db: Database) -> None:
    from app.agreement.cache import fingerprint

    with db.session() as s:
        project, users, items = _world(s, 6)
        for n, item in enumerate(items):
            for user in users:
                vote(s, item, user, n % 2, shown=n < 3, helpful=n % 2)
        s.commit()
        before = fingerprint(s, project=project).source
        for n, item in enumerate(items):
            suggest(s, item, "preference", n % 2)
        s.commit()
        assert fingerprint(s, project=project).source != before  # suggestions invalidate the cache
        figures = agreement.compute(s, project=project, resamples=20)
    assert figures.judge is not None and figures.judge.judge == JUDGE
    overall = figures.judge.dimensions[0]
    assert (overall.dimension, overall.kappa, overall.kappa_n, overall.coverage) == ("overall", 1.0, 6, 1.0)
    assert overall.anchoring is not None and overall.anchoring.difference == 0.0
    helpful = figures.judge.dimensions[1]
    assert helpful.kappa is None and helpful.coverage == 0.0 and helpful.anchoring is None
    rows = [a for a in figures.annotators if a.is_judge]
    assert [(r.annotator, r.judgments, r.majority_agreement) for r in rows] == [(f"judge: {JUDGE}", 6, 1.0)]
    assert all(JUDGE not in (p.a, p.b) for p in figures.pairs)
