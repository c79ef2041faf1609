"""Agreement figures that say what they measure, from planted judgments on both databases: position bias
against 1/k, Fleiss' coverage, Cohen's minimum of shared items, rankings (W, τ), strength α, conflicts between
dimensions, and the dashboard that shows them."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.agreement import service as agreement
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Project
from tests.agreement.test_service import ITEMS, _annotate, left_clicker
from tests.factories import make_items, make_judgment, make_project, make_user

Planted = dict[str, tuple[str, int | None, int | None]]


def _figures(db: Database, project_id: int, resamples: int = 50) -> Any:
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        return agreement.compute(s, project=project, resamples=resamples)


def _dim(out: Any, name: str = "overall") -> Any:
    return next(d for d in out.dimensions if d.dimension == name)


def balanced(item_id: int, shown: list[int], rng: random.Random) -> int:
    # The candidate shown first on every other item: exactly half left, whatever the page's (unseeded) shuffle.
    return shown[item_id % 2]


def test_an_always_left_annotator_is_flagged_at_k2(db: Database) -> None:
    out = _figures(db, _annotate(db, {"a": balanced, "b": balanced, "c": balanced, "l": left_clicker}))
    by_name = {a.annotator: a for a in out.annotators}
    left = by_name["l"]
    assert left.left_choice_rate == 1.0 and left.left_judgments == ITEMS
    assert left.position_p is not None and left.position_p < 1e-10
    assert left.position_bias and left.outlier  # flagged though it agrees with the majority half the time
    for name in "abc":  # left exactly half the time: chance at k = 2
        assert by_name[name].left_choice_rate == 0.5 and by_name[name].position_p == 1.0
        assert not by_name[name].position_bias


def _planted(db: Database, *, k: int, plan: dict[str, list[Planted]], **fields: Any) -> int:
    """Each annotator judges items 0, 1, … with the planted verdicts (canonical positions), written directly."""
    with db.session() as s:
        users = {name: make_user(s, name) for name in plan}
        project = make_project(s, "plant", k=k, overlap=3, members=list(users.values()), **fields)
        items = make_items(s, project, max(len(v) for v in plan.values()))
        for name, verdicts in plan.items():
            for item, planted in zip(items, verdicts, strict=False):
                make_judgment(s, item, users[name], planted)
        return project.id


def test_fleiss_coverage_at_k4_names_the_pairs_it_leaves_out(db: Database) -> None:
    # a and b: best 0, worst 3 — pairs (0,1) (0,2) (0,3) (1,3) (2,3); c: best 1, worst 3 — (0,1) (1,2) (1,3)
    # (0,3) (2,3). Per item (0,2) has two ratings and (1,2) one: α uses 5 pairs, Fleiss' κ (r = 3) 4 of them.
    same: Planted = {"overall": ("preference", 0, 3)}
    other: Planted = {"overall": ("preference", 1, 3)}
    out = _figures(db, _planted(db, k=4, plan={"a": [same] * 10, "b": [same] * 10, "c": [other] * 10}))
    overall = _dim(out)
    assert (overall.units, overall.fleiss_units) == (50, 40)
    assert overall.fleiss_coverage == pytest.approx(0.8)
    # Item level: a and b agree exactly, c with neither: 1 of 3 annotator pairs per item.
    assert overall.item_agreement == pytest.approx(1 / 3, abs=1e-4) and overall.item_units == 10
    assert overall.kendall_w is None  # no rankings in a best–worst project


def test_cohen_needs_the_minimum_of_shared_items(db: Database) -> None:
    rng = random.Random(2)
    prefs: list[Planted] = [{"overall": ("preference", *rng.sample([0, 1], 2))} for _ in range(30)]
    # c judges only the first 10 items (shared with a and b): listed, greyed, no κ.
    out = _figures(db, _planted(db, k=2, plan={"a": prefs, "b": prefs, "c": prefs[:10]}))
    pairs = {(p.a, p.b): p for p in out.pairs}
    assert out.cohen_min_items == 20
    ab = pairs[("a", "b")]
    assert ab.enough and ab.shared_items == 30 and ab.kappa == pytest.approx(1.0)
    assert ab.kappa_ci is not None and ab.kappa_ci.low == pytest.approx(1.0)
    for key in (("a", "c"), ("b", "c")):
        assert not pairs[key].enough and pairs[key].kappa is None and pairs[key].kappa_ci is None
        assert pairs[key].shared_items == 10 and pairs[key].shared_units == 10
    # A lower minimum (a project setting) claims a κ for them.
    with db.session() as s:
        project = s.query(Project).filter_by(slug="plant").one()
        project.cohen_min_items = 10
    lowered = {(p.a, p.b): p for p in _figures(db, project.id).pairs}
    assert lowered[("a", "c")].enough and lowered[("a", "c")].kappa == pytest.approx(1.0)


def _rank(db: Database, orders: dict[str, list[list[int]]], *, reverse: frozenset[str] = frozenset()) -> int:
    """A rank-mode project at k = 3: each annotator gives the same ranking (by canonical position, tiers) on
    every dimension of every item — reversed for the names in ``reverse``."""
    with db.session() as s:
        users = {name: make_user(s, name) for name in orders}
        project = make_project(s, "ranks", k=3, overlap=len(users), members=list(users.values()), ranking_mode="rank")
        make_items(s, project, 24)
        for name, tiers in orders.items():
            user = users[name]
            while (task := assign_next_item(s, project=project, annotator=user)) is not None:
                ids = sorted(c.id for c in task.candidates)
                ranking = [[ids[p] for p in tier] for tier in (tiers[::-1] if name in reverse else tiers)]
                verdict = VerdictIn(kind="ranking", ranking=ranking, much=[0])
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{name}-{task.assignment.id}-rank",
                    data=JudgmentIn(verdicts=dict.fromkeys(dimension_keys(project), verdict), seconds=2.0),
                )
        return project.id


def test_identical_rankers_give_w_one_and_tau_one(db: Database) -> None:
    order = [[0], [1, 2]]  # 0 best, 1 and 2 tied
    out = _figures(db, _rank(db, {"a": order, "b": order, "c": order}))
    overall = _dim(out)
    assert overall.kendall_w == pytest.approx(1.0) and overall.kendall_w_items == 24
    assert overall.kendall_tau == pytest.approx(1.0) and overall.kendall_tau_pairs == 3
    assert overall.item_agreement == pytest.approx(1.0) and overall.alpha == pytest.approx(1.0)
    assert overall.units == 24 * 3  # every pair of a ranking, the tie included


def test_a_reversed_ranker_lowers_w_and_tau(db: Database) -> None:
    order = [[0], [1], [2]]
    out = _figures(db, _rank(db, {"a": order, "b": order, "c": order}, reverse=frozenset({"c"})))
    overall = _dim(out)
    # Rank sums (1+1+3, 2+2+2, 3+3+1) = (5, 6, 7): S = 2, W = 12·2 / (9·24) = 1/9.
    assert overall.kendall_w == pytest.approx(1 / 9, abs=1e-4)
    # τ-b: a–b 1, a–c −1, b–c −1: mean −1/3.
    assert overall.kendall_tau == pytest.approx(-1 / 3, abs=1e-4)
    assert overall.item_agreement == pytest.approx(1 / 3, abs=1e-4)


def test_strength_alpha_and_dimension_conflicts(db: Database) -> None:
    plan: dict[str, list[Planted]] = {}
    for name in ("a", "b", "c"):
        # Overall: 0 ≻ 1; helpful: the reverse; harmless: the same as overall.
        plan[name] = [
            {"overall": ("preference", 0, 1), "helpful": ("preference", 1, 0), "harmless": ("preference", 0, 1)}
        ] * 12
    out = _figures(db, _planted(db, k=2, plan=plan))
    conflicts = {(c.first, c.second): c for c in out.conflicts}
    assert (conflicts[("overall", "helpful")].pairs, conflicts[("overall", "helpful")].conflicts) == (12, 12)
    assert (conflicts[("overall", "harmless")].pairs, conflicts[("overall", "harmless")].conflicts) == (12, 0)
    assert conflicts[("overall", "honest")].pairs == 0  # nothing said on honest
    assert _dim(out).strength_alpha is None  # no strength asked


def test_strength_alpha_of_consistent_and_scattered_raters(db: Database) -> None:
    with db.session() as s:
        users = [make_user(s, n) for n in ("a", "b", "c")]
        project = make_project(s, "strong", k=2, overlap=3, members=users, strength=True)
        make_items(s, project, 20)
        for u, user in enumerate(users):
            while (task := assign_next_item(s, project=project, annotator=user)) is not None:
                ids = sorted(c.id for c in task.candidates)
                n = task.item.id
                best, worst = (ids[0], ids[1]) if n % 2 else (ids[1], ids[0])
                # Everyone agrees on the direction; the strength is n % 3 + 1 for all but c's on overall.
                strength = (n + u) % 3 + 1 if u == 2 else n % 3 + 1
                pref = VerdictIn(kind="preference", chosen=best, rejected=worst, strength=strength)
                same = VerdictIn(kind="preference", chosen=best, rejected=worst, strength=n % 3 + 1)
                verdicts = dict.fromkeys(dimension_keys(project), same) | {"overall": pref}
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{u}-{task.assignment.id}-strength",
                    data=JudgmentIn(verdicts=verdicts, seconds=2.0),
                )
        project_id = project.id
    out = _figures(db, project_id)
    assert _dim(out, "helpful").strength_alpha == pytest.approx(1.0) and _dim(out, "helpful").strength_units == 20
    overall = _dim(out)
    assert overall.alpha == pytest.approx(1.0)  # the directions agree …
    assert overall.strength_alpha is not None and overall.strength_alpha < 1.0  # … the strengths less so


def test_dashboard_shows_alpha_coverage_greyed_pairs_and_conflicts(
    client: TestClient, db: Database, settings: Settings
) -> None:
    same: Planted = {"overall": ("preference", 0, 3), "helpful": ("preference", 3, 0)}
    flip: Planted = {"overall": ("preference", 3, 0), "helpful": ("preference", 0, 3)}
    other: Planted = {"overall": ("preference", 1, 3), "helpful": ("preference", 3, 1)}
    ab = [same, flip] * 12 + [same]
    _planted(db, k=4, plan={"a": ab, "b": ab, "c": [other] * 10})
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
    page = client.get("/projects/plant/agreement", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200
    text = page.text
    dims = text.split('id="agreement-dimensions"', 1)[1].split("</table>", 1)[0]
    assert dims.index("Krippendorff α") < dims.index("Fleiss κ")  # α is the headline, first
    # Overall: 25 items × 5 pairs with two or more ratings; only 4 pairs of each of c's 10 items have all three.
    assert "on 32% of pairs" in dims and "(40/125)" in dims
    assert "Same best and worst" in dims and "Kendall W" not in dims
    cohen = text.split('id="agreement-cohen"', 1)[1].split("</table>", 1)[0]
    assert 'class="below-minimum" data-pair="a|c"' in cohen and "10 shared items, fewer than 20: no κ" in cohen
    assert 'data-pair="a|b"' in cohen and "1.00" in cohen
    assert 'id="agreement-conflicts"' in text and "125/125" in text
    assert "Model reliability" in text and 'class="reliability">—' in text
    assert "Position bias p" in text


def test_cohen_minimum_moves_the_fingerprint(db: Database) -> None:
    from app.agreement.cache import fingerprint

    with db.session() as s:
        project = make_project(s, "fp")
        before = fingerprint(s, project=project).source
        project.cohen_min_items = 5
        s.flush()
        assert fingerprint(s, project=project).source != before
