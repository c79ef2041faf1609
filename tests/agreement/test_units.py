"""Agreement reads rankings and strengths into the same pairs the export writes: every loaded verdict's labels
and strengths equal ``app.export.pairs.pairs_of`` / ``strengths_of`` on the stored row."""

from __future__ import annotations

import random

import numpy as np
from sqlalchemy import select

from app.agreement import loading, units
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.db import Database
from app.export.pairs import pairs_of, ranked_of, strengths_of
from app.models import OVERALL, Candidate, Item, Judgment, Project, Verdict
from tests.factories import make_items, make_project, make_user


def _random_verdict(rng: random.Random, ids: list[int], *, rank: bool, strength: bool, dim: str) -> VerdictIn:
    roll = rng.random()
    if roll < 0.1:
        return VerdictIn(kind="tie")
    if roll < 0.2 and dim != OVERALL:
        return VerdictIn(kind="na")
    if rank:
        order = rng.sample(ids, len(ids))
        tiers: list[list[int]] = [[order[0]]]
        for cid in order[1:]:
            if rng.random() < 0.3:
                tiers[-1].append(cid)  # a tie with the one before
            else:
                tiers.append([cid])
        much = [g for g in range(len(tiers) - 1) if rng.random() < 0.4]
        return VerdictIn(kind="ranking", ranking=tiers, much=much)
    best, worst = rng.sample(ids, 2)
    return VerdictIn(kind="preference", chosen=best, rejected=worst, strength=rng.randint(1, 3) if strength else None)


def _fill(db: Database, *, k: int, rank: bool, strength: bool) -> int:
    rng = random.Random(k * 10 + rank)
    with db.session() as s:
        users = [make_user(s, n) for n in ("u1", "u2", "u3")]
        project = make_project(
            s, "pairs", k=k, overlap=3, members=users, ranking_mode="rank" if rank else "best_worst", strength=strength
        )
        make_items(s, project, 12)
        for user in users:
            while (task := assign_next_item(s, project=project, annotator=user)) is not None:
                ids = [c.id for c in task.candidates]
                verdicts = {
                    d: _random_verdict(rng, ids, rank=rank, strength=strength, dim=d) for d in dimension_keys(project)
                }
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{user.id}-{task.assignment.id}-pairs",
                    data=JudgmentIn(verdicts=verdicts, seconds=2.0),
                )
        return project.id


def _check(db: Database, project_id: int) -> int:
    """Compare every loaded verdict with the export's pairs on the stored row; returns the verdicts compared."""
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        dims = [OVERALL, *project.dimension_keys]
        ratings = loading.load(s, project=project).ratings
        positions = dict(s.execute(select(Candidate.id, Candidate.position)).tuples().all())
        rows = s.execute(
            select(Judgment.item_id, Judgment.annotator_id, Verdict)
            .join(Verdict, Verdict.judgment_id == Judgment.id)
            .join(Item, Item.id == Judgment.item_id)
            .where(Judgment.project_id == project_id)
        ).all()
        stored = {(item, annotator, dims.index(v.dimension)): v for item, annotator, v in rows}
        k = project.k
        pairs = units.candidate_pairs(k)
        labels = [units.pair_labels(ratings, i, j) for i, j in pairs]
        strengths = [units.pair_strengths(ratings, i, j, labels[p]) for p, (i, j) in enumerate(pairs)]
        for at in range(len(ratings.kind)):
            v = stored[(int(ratings.item[at]), int(ratings.annotator[at]), int(ratings.dimension[at]))]
            chosen = positions.get(v.chosen_candidate_id) if v.chosen_candidate_id else None
            rejected = positions.get(v.rejected_candidate_id) if v.rejected_candidate_id else None
            ranked = ranked_of(v.ranking, positions)
            want = pairs_of(v.kind, chosen, rejected, ranked, k, "implied")
            got = {pair: int(labels[p][at]) for p, pair in enumerate(pairs) if labels[p][at] >= 0}
            assert got == want, (v.kind, v.ranking)
            want_strength = strengths_of(v.kind, chosen, rejected, ranked, k, v.strength)
            got_strength = {pair: int(strengths[p][at]) for p, pair in enumerate(pairs) if strengths[p][at] >= 0}
            assert got_strength == want_strength, (v.kind, v.ranking, v.strength)
        return len(ratings.kind)


def test_rankings_give_the_export_pairs_and_strengths(db: Database) -> None:
    project_id = _fill(db, k=4, rank=True, strength=False)
    assert _check(db, project_id) == 12 * 3 * 6
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        ratings = loading.load(s, project=project).ratings
    assert ratings.tiers is not None and ratings.much is not None
    assert (ratings.kind == loading.RANKING).sum() > 100 and ratings.much.any()


def test_best_worst_at_k3_gives_the_export_pairs(db: Database) -> None:
    assert _check(db, _fill(db, k=3, rank=False, strength=False)) == 12 * 3 * 6


def test_strengths_at_k2_give_the_export_strengths(db: Database) -> None:
    project_id = _fill(db, k=2, rank=False, strength=True)
    assert _check(db, project_id) == 12 * 3 * 6
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        ratings = loading.load(s, project=project).ratings
    assert ratings.tiers is None  # no ranking: no second read
    assert set(np.unique(ratings.strength[ratings.kind == loading.PREFERENCE]).tolist()) == {1, 2, 3}
