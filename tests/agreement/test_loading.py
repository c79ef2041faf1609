"""The packed, vectorized loading agrees with a plain per-verdict reading of the same judgments."""

from __future__ import annotations

import random
from collections import defaultdict
from functools import partial

import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from app.agreement import loading, stats
from app.agreement import service as agreement
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.db import Database
from app.items.service import set_gold
from app.models import Candidate, Item, Judgment, Project, Verdict
from tests.factories import make_items, make_project, make_user


def _world(db: Database, k: int) -> int:
    """Four annotators on 30 items (overlap 3), random preferences, ties and n.a.; one gold item; one item
    regenerated after it was judged (its old judgments no longer count)."""
    rng = random.Random(k)
    with db.session() as s:
        users = [make_user(s, n) for n in ("w", "x", "y", "z")]
        project = make_project(s, "load", k=k, overlap=3, members=users)
        items = make_items(s, project, 30)
        set_gold(s, project=project, item_id=items[0].id, expected={"overall": {"kind": "tie"}})
        for user in users:
            while (task := assign_next_item(s, project=project, annotator=user)) is not None:
                ids = [c.id for c in task.candidates]
                verdicts = {}
                for dim in dimension_keys(project):
                    roll = rng.random()
                    if roll < 0.15:
                        verdicts[dim] = VerdictIn(kind="tie")
                    elif roll < 0.25 and dim != "overall":
                        verdicts[dim] = VerdictIn(kind="na")
                    else:
                        best, worst = rng.sample(sorted(ids)[:3] if rng.random() < 0.7 else ids, 2)
                        verdicts[dim] = VerdictIn(kind="preference", chosen=best, rejected=worst)
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{user.id}-{task.assignment.id}-load",
                    data=JudgmentIn(verdicts=verdicts, seconds=round(rng.random() * 20, 3), all_bad=roll < 0.05),
                )
        regenerated = s.get(Item, items[1].id)
        assert regenerated is not None
        regenerated.round += 1
        return project.id


def _reference(db: Database, project_id: int) -> dict[str, dict[tuple[int, tuple[int, int]], dict[int, int]]]:
    """dimension → (item, pair) → annotator → label, read row by row through the ORM's plain columns."""
    chosen, rejected = aliased(Candidate), aliased(Candidate)
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        rows = s.execute(
            select(
                Judgment.item_id,
                Judgment.annotator_id,
                Verdict.dimension,
                Verdict.kind,
                chosen.position,
                rejected.position,
            )
            .join(Verdict, Verdict.judgment_id == Judgment.id)
            .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
            .outerjoin(chosen, chosen.id == Verdict.chosen_candidate_id)
            .outerjoin(rejected, rejected.id == Verdict.rejected_candidate_id)
            .where(Judgment.project_id == project_id, Item.is_gold.is_(False))
        ).all()
        k = project.k
    units: dict[str, dict[tuple[int, tuple[int, int]], dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for item, annotator, dim, kind, c, r in rows:
        for pair, label in stats.implied_pairs(kind, c, r, k).items():
            units[dim][(item, pair)][annotator] = label
    return units


@pytest.mark.parametrize("k", [2, 3, 4])
def test_figures_match_a_per_verdict_reading(db: Database, k: int) -> None:
    project_id = _world(db, k)
    units = _reference(db, project_id)
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        out = agreement.compute(s, project=project, resamples=0)
        gold_item = s.scalar(select(Item.id).where(Item.project_id == project_id, Item.is_gold.is_(True)))
        assert [["BETWEEN" in str(c) for c in half] for half in loading._verdicts_of(s, project)] == [
            [True],
            [True],
        ]  # one project: the range path
        ratings = loading.load(s, project=project).ratings
    assert gold_item not in set(ratings.item.tolist())
    annotators = sorted({a for dim in units.values() for votes in dim.values() for a in votes})
    for figures in out.dimensions:
        shared = {key: votes for key, votes in units[figures.dimension].items() if len(votes) >= 2}
        data = np.full((len(annotators), len(shared)), np.nan)
        for j, votes in enumerate(shared.values()):
            for a, label in votes.items():
                data[annotators.index(a), j] = label
        assert figures.units == len(shared)
        if not shared:
            continue
        kappa, used = stats.fleiss(data, 3)
        assert figures.fleiss_units == used
        assert figures.fleiss_kappa == (None if np.isnan(kappa) else pytest.approx(kappa, abs=1e-4))
        assert figures.alpha == pytest.approx(stats.alpha(data), abs=1e-4)
        assert figures.percent_agreement == pytest.approx(stats.percent_agreement(data), abs=1e-4)
        labels = {name: int((data == c).sum()) for c, name in agreement.LABEL_NAMES.items()}
        assert figures.labels == labels
    assert out.dimensions[0].units > 20
    with db.session(write=False) as s:
        counted = dict(
            s.execute(
                select(Judgment.annotator_id, func.count())
                .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
                .where(Judgment.project_id == project_id, Item.is_gold.is_(False))
                .group_by(Judgment.annotator_id)
            )
            .tuples()
            .all()
        )
    by_id = {a.user_id: a.judgments for a in out.annotators if a.judgments}
    assert by_id == counted and sum(counted.values()) > 60


def test_lookup_dense_and_sparse_keys() -> None:
    keys = np.array([3, 7, 8, 20], dtype=np.int64)
    values = np.array([30, 70, 80, 200], dtype=np.int64)
    wanted = np.array([7, 1, 20, 9, 3, 25, -1], dtype=np.int64)
    expected = [70, -1, 200, -1, 30, -1, -1]
    assert loading._lookup(keys, values, wanted).tolist() == expected
    sparse = keys * 10**9  # too wide a range for a table: binary search
    assert loading._lookup(sparse, values, wanted * 10**9).tolist() == expected
    assert loading._lookup(keys[:0], values[:0], wanted).tolist() == [-1] * len(wanted)


def test_interleaved_projects_read_only_their_own_verdicts(db: Database) -> None:
    """Three projects judged in turn: a project's judgment ids are a third of their range, so its verdicts
    are read through the join; each project's figures still count only its own judgments."""
    with db.session() as s:
        users = [make_user(s, n) for n in ("p", "q")]
        projects = [make_project(s, f"il{i}", k=2, overlap=2, members=users, gold_share=0.0) for i in range(3)]
        for project in projects:
            make_items(s, project, 12)
        for _ in range(12):
            for user in users:
                for n, project in enumerate(projects):
                    task = assign_next_item(s, project=project, annotator=user)
                    assert task is not None
                    a, b = sorted(c.id for c in task.candidates)
                    best, worst = (a, b) if (task.item.id + n) % 3 else (b, a)
                    submit_judgment(
                        s,
                        project=project,
                        annotator=user,
                        assignment_id=task.assignment.id,
                        submit_key=f"il-{task.assignment.id}",
                        data=JudgmentIn(
                            verdicts={
                                d: VerdictIn(kind="preference", chosen=best, rejected=worst)
                                for d in dimension_keys(project)
                            }
                        ),
                    )
        ids = [p.id for p in projects]
    for project_id in ids:
        units = _reference(db, project_id)
        with db.session(write=False) as s:
            project = s.get(Project, project_id)
            assert project is not None
            assert [" IN " in str(half[0]) for half in loading._verdicts_of(s, project)] == [
                True,
                True,
            ]  # the join path
            out = agreement.compute(s, project=project, resamples=0)
        assert [d.units for d in out.dimensions] == [len(units[d.dimension]) for d in out.dimensions] == [12] * 6
        assert sum(out.dimensions[0].labels.values()) == 24
        assert {a.annotator: a.judgments for a in out.annotators} == {"p": 12, "q": 12}


def test_parallel_reads_see_the_sessions_data(db: Database) -> None:
    """The loading queries run on connections of their own; on PostgreSQL they read the snapshot of the
    caller's transaction (a change committed after it began is seen by none of them)."""
    project_id = _world(db, 2)
    total = select(func.count()).select_from(Judgment).where(Judgment.project_id == project_id)
    later = total.where(Judgment.reason == "changed later")
    with db.session(write=False) as s:
        if db.is_postgres:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        before = s.scalar(total)
        assert before
        with db.session() as w:  # committed while the figures are being read
            w.execute(update(Judgment).where(Judgment.project_id == project_id).values(reason="changed later"))
        tasks = [partial(loading.int_columns, query=q) for q in (total, later)]
        parallel = [int(columns[0][0]) for columns in loading.at_once(s, tasks)]
        sequential = [int(loading.int_columns(s, q)[0][0]) for q in (total, later)]
    if db.is_postgres:
        assert parallel == sequential == [before, 0]
    else:  # each connection reads the latest committed state
        assert parallel == [before, before]
