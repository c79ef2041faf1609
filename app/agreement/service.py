"""Agreement figures of a project, from its judgments (current candidate round), per dimension and overall."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from statistics import median
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.agreement import stats
from app.agreement.schemas import AgreementOut, AnnotatorFigures, DimensionFigures, IntervalOut, PairKappa
from app.models import OVERALL, Assignment, Candidate, Item, Judgment, Project, ProjectMember, User, Verdict

MIN_SHARED_FOR_COHEN = 10
OUTLIER_GAP = 0.2
LABEL_NAMES = {stats.FIRST: "first", stats.SECOND: "second", stats.TIE: "tie"}
NOTE = (
    "Unit: a preference pair (two candidates of one item) on one dimension. n.a. is missing, not a category. "
    "Fleiss' κ uses only pairs rated by exactly r annotators; Krippendorff's α uses every pair with two or more "
    "ratings. 95% intervals resample items (bootstrap)."
)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _interval(interval: stats.Interval | None) -> IntervalOut | None:
    return None if interval is None else IntervalOut(low=_finite(interval.low), high=_finite(interval.high))


def load_ratings(session: Session, *, project: Project) -> list[dict[str, Any]]:
    """One row per verdict of the current round: who, which item, which dimension, canonical positions."""
    chosen, rejected = aliased(Candidate), aliased(Candidate)
    rows = session.execute(
        select(
            Judgment.item_id,
            Judgment.annotator_id,
            Judgment.seconds,
            Judgment.flag_all_bad,
            Verdict.dimension,
            Verdict.kind,
            chosen.position,
            rejected.position,
            chosen.id,
            Assignment.display_order,
        )
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .outerjoin(chosen, chosen.id == Verdict.chosen_candidate_id)
        .outerjoin(rejected, rejected.id == Verdict.rejected_candidate_id)
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False))
    ).all()
    return [
        {
            "item": r[0],
            "annotator": r[1],
            "seconds": r[2],
            "all_bad": r[3],
            "dimension": r[4],
            "kind": r[5],
            "chosen": r[6],
            "rejected": r[7],
            "chosen_id": r[8],
            "display_order": r[9],
        }
        for r in rows
    ]


def compute(session: Session, *, project: Project, resamples: int = 200, seed: int = 0) -> AgreementOut:
    """Every figure of the agreement page, computed now."""
    ratings = load_ratings(session, project=project)
    names = dict(session.execute(select(User.id, User.username)).tuples().all())
    annotators = sorted({r["annotator"] for r in ratings})
    column = {a: i for i, a in enumerate(annotators)}
    dims = [OVERALL, *project.dimension_keys]

    # unit (item, pair, dimension) → rater row → label
    units: dict[str, dict[tuple[int, tuple[int, int]], dict[int, int]]] = {d: defaultdict(dict) for d in dims}
    for r in ratings:
        if r["dimension"] not in units:
            continue
        for pair, label in stats.implied_pairs(r["kind"], r["chosen"], r["rejected"], project.k).items():
            units[r["dimension"]][(r["item"], pair)][r["annotator"]] = label

    figures = []
    matrices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dim in dims:
        keys = [key for key, votes in units[dim].items() if len(votes) >= 2]
        data = np.full((len(annotators), len(keys)), np.nan)
        for j, key in enumerate(keys):
            for annotator, label in units[dim][key].items():
                data[column[annotator], j] = label
        groups = np.array([key[0] for key in keys], dtype=np.int64)
        matrices[dim] = (data, groups)
        kappa, used = stats.fleiss(data, project.overlap) if keys else (float("nan"), 0)
        alpha = stats.alpha(data) if keys else float("nan")
        enough = len(set(groups.tolist())) >= 2 and resamples > 0
        fleiss_ci = (
            stats.bootstrap(
                data, lambda d: stats.fleiss(d, project.overlap)[0], groups=groups, resamples=resamples, seed=seed
            )
            if enough and used
            else None
        )
        alpha_ci = stats.bootstrap(data, stats.alpha, groups=groups, resamples=resamples, seed=seed) if enough else None
        labels = Counter(int(v) for v in data[~np.isnan(data)])
        figures.append(
            DimensionFigures(
                dimension=dim,
                units=len(keys),
                fleiss_kappa=_finite(kappa),
                fleiss_units=used,
                fleiss_ci=_interval(fleiss_ci),
                alpha=_finite(alpha),
                alpha_ci=_interval(alpha_ci),
                percent_agreement=_finite(stats.percent_agreement(data)) if keys else None,
                meaning=stats.landis_koch(kappa if not math.isnan(kappa) else alpha),
                labels={LABEL_NAMES[c]: labels.get(c, 0) for c in stats.CATEGORIES},
            )
        )

    overall, _ = matrices[OVERALL]
    pairs = []
    for a, b in ((a, b) for i, a in enumerate(annotators) for b in annotators[i + 1 :]):
        kappa, shared = stats.cohen(overall[column[a]], overall[column[b]])
        if shared >= MIN_SHARED_FOR_COHEN:
            pairs.append(
                PairKappa(a=names.get(a, str(a)), b=names.get(b, str(b)), kappa=_finite(kappa), shared_units=shared)
            )

    people = _annotator_figures(ratings, overall, annotators, column, names)
    gold = gold_accuracy(session, project=project)
    paused = set(
        session.scalars(
            select(ProjectMember.user_id).where(ProjectMember.project_id == project.id, ProjectMember.paused.is_(True))
        )
    )
    known = {p.annotator for p in people}
    members = set(session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)))
    for user_id in sorted(set(gold) | members):
        if names.get(user_id, str(user_id)) not in known:  # no (non-gold) judgment yet
            people.append(
                AnnotatorFigures(
                    annotator=names.get(user_id, str(user_id)),
                    judgments=0,
                    median_seconds=None,
                    majority_agreement=None,
                    tie_rate=0.0,
                    all_bad_rate=0.0,
                    left_choice_rate=None,
                    outlier=False,
                )
            )
    by_name = {names.get(u, str(u)): u for u in set(annotators) | set(gold) | members}
    for person in people:
        member_id = by_name.get(person.annotator)
        if member_id is not None and member_id in gold:
            n, accuracy = gold[member_id]
            person.gold_judgments = n
            person.gold_accuracy = _finite(accuracy) if accuracy is not None else None
            person.below_gold_threshold = accuracy is not None and accuracy < project.gold_min_accuracy
        person.paused = member_id in paused
        person.user_id = member_id
    return AgreementOut(
        project=project.slug,
        overlap=project.overlap,
        dimensions=figures,
        pairs=pairs,
        annotators=people,
        note=NOTE,
    )


def gold_accuracy(session: Session, *, project: Project) -> dict[int, tuple[int, float | None]]:
    """Per annotator: (gold judgments, share of expected answers matched). Positions are canonical."""
    chosen, rejected = aliased(Candidate), aliased(Candidate)
    rows = session.execute(
        select(
            Judgment.id,
            Judgment.annotator_id,
            Item.gold,
            Verdict.dimension,
            Verdict.kind,
            chosen.position,
            rejected.position,
        )
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .outerjoin(chosen, chosen.id == Verdict.chosen_candidate_id)
        .outerjoin(rejected, rejected.id == Verdict.rejected_candidate_id)
        .where(Judgment.project_id == project.id, Item.is_gold.is_(True))
    ).all()
    judged: dict[int, set[int]] = defaultdict(set)
    hits: dict[int, list[bool]] = defaultdict(list)
    for judgment_id, annotator, expected, dimension, kind, chosen_pos, rejected_pos in rows:
        judged[annotator].add(judgment_id)
        want = (expected or {}).get(dimension)
        if not want or want["kind"] == "either":
            continue
        if want["kind"] == "tie":
            hits[annotator].append(kind == "tie")
        elif project.k == 2:
            hits[annotator].append(kind == "preference" and chosen_pos == want["chosen"])
        else:
            hits[annotator].append(
                kind == "preference" and (chosen_pos, rejected_pos) == (want["chosen"], want["rejected"])
            )
    return {a: (len(judged[a]), (sum(hits[a]) / len(hits[a])) if hits[a] else None) for a in judged}


def _annotator_figures(
    ratings: list[dict[str, Any]],
    overall: np.ndarray,
    annotators: list[int],
    column: dict[int, int],
    names: dict[int, str],
) -> list[AnnotatorFigures]:
    per: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in ratings:
        if r["dimension"] == OVERALL:
            per[r["annotator"]].append(r)
    out = []
    agreements: dict[int, float | None] = {}
    for a in annotators:
        row = overall[column[a]]
        agree = total = 0
        for j in np.flatnonzero(~np.isnan(row)):
            others = np.delete(overall[:, j], column[a])
            others = others[~np.isnan(others)]
            if len(others) == 0:
                continue
            counts = Counter(int(v) for v in others)
            top = counts.most_common()
            if len(top) > 1 and top[0][1] == top[1][1]:
                continue  # no majority among the others
            total += 1
            agree += int(top[0][0] == int(row[j]))
        agreements[a] = agree / total if total else None
    known = [v for v in agreements.values() if v is not None]
    typical = float(np.median(known)) if known else 0.0
    for a in annotators:
        mine = per[a]
        seconds = [r["seconds"] for r in mine if r["seconds"] is not None]
        prefs = [r for r in mine if r["kind"] == "preference" and r["display_order"]]
        left = [r["display_order"][0] == r["chosen_id"] for r in prefs]
        value = agreements[a]
        out.append(
            AnnotatorFigures(
                annotator=names.get(a, str(a)),
                judgments=len(mine),
                median_seconds=round(median(seconds), 1) if seconds else None,
                majority_agreement=_finite(value) if value is not None else None,
                tie_rate=round(sum(r["kind"] == "tie" for r in mine) / len(mine), 4) if mine else 0.0,
                all_bad_rate=round(sum(bool(r["all_bad"]) for r in mine) / len(mine), 4) if mine else 0.0,
                left_choice_rate=round(sum(left) / len(left), 4) if left else None,
                # Flagged: agrees with the others' majority clearly less often than the typical annotator.
                outlier=value is not None and len(known) >= 3 and value < typical - OUTLIER_GAP,
            )
        )
    return out
