"""Agreement figures of a project, from its judgments (current candidate round), per dimension and overall.

``compute`` recomputes everything from the database (read by ``loading``); the dashboard and the JSON endpoint
read the figures the worker keeps in ``agreement_cache`` (see ``cache``).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased
from threadpoolctl import threadpool_limits

from app.agreement import itemlevel, stats, units
from app.agreement.judge import judge_figures
from app.agreement.loading import TIE, Judgments, Ratings, load
from app.agreement.schemas import (
    AgreementOut,
    AnnotatorFigures,
    ConflictOut,
    DimensionFigures,
    IntervalOut,
    PairKappa,
)
from app.agreement.units import Units
from app.models import IS_GOLD, OVERALL, Candidate, Item, Judgment, Project, ProjectMember, User, Verdict

OUTLIER_GAP = 0.2
RESAMPLES = 200  # bootstrap resamples behind the cached intervals
LABEL_NAMES = {stats.FIRST: "first", stats.SECOND: "second", stats.TIE: "tie"}
NOTE = (
    "Unit: a preference pair (two candidates of one item) on one dimension; n.a. is missing, not a category. "
    "Krippendorff's α (the headline) and percent agreement use every pair with two or more ratings; Fleiss' κ "
    "only the pairs rated by exactly r annotators (its coverage); Cohen's κ the overall pairs two annotators "
    "share; item-level figures (k ≥ 3) whole items. 95% intervals resample items (bootstrap)."
)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _interval(interval: stats.Interval | None) -> IntervalOut | None:
    return None if interval is None else IntervalOut(low=_finite(interval.low), high=_finite(interval.high))


def compute(session: Session, *, project: Project, resamples: int = RESAMPLES, seed: int = 0) -> AgreementOut:
    """Every figure of the agreement page, computed now."""
    # One BLAS thread: the products here are small, and threads fighting the web server and the database
    # for two cores made the bootstrap several times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        return _compute(session, project=project, resamples=resamples, seed=seed)


def _compute(session: Session, *, project: Project, resamples: int, seed: int) -> AgreementOut:
    loaded = load(session, project=project, timeline=True)
    ratings, judgments = loaded.ratings, loaded.judgments
    names = dict(session.execute(select(User.id, User.username)).tuples().all())
    annotators = [int(a) for a in np.unique(ratings.annotator)]
    column_of = np.searchsorted(np.array(annotators, dtype=np.int64), ratings.annotator)
    dims = [OVERALL, *project.dimension_keys]
    per_dimension = units.matrices(ratings, k=project.k, dimensions=len(dims), columns=column_of)
    figures = [
        _dimension_figures(ratings, project=project, dimension=d, name=name, units=u, resamples=resamples, seed=seed)
        for d, (name, u) in enumerate(zip(dims, per_dimension, strict=True))
    ]
    overall = per_dimension[0]
    pairs = _cohen_pairs(overall, annotators, names, minimum=project.cohen_min_items, resamples=resamples, seed=seed)
    people = _annotator_figures(judgments, overall.data, annotators, names, k=project.k)
    _add_members_and_gold(session, project=project, people=people, annotators=annotators, names=names)
    # The judges come last and apart: none of the figures above sees a suggestion.
    judge, judge_rows = judge_figures(session, project=project, ratings=ratings, resamples=resamples, seed=seed)
    people.extend(judge_rows)
    assert loaded.timeline is not None
    unit, timeline = loaded.timeline
    return AgreementOut(
        project=project.slug,
        k=project.k,
        overlap=project.overlap,
        cohen_min_items=project.cohen_min_items,
        dimensions=figures,
        pairs=pairs,
        annotators=people,
        conflicts=[ConflictOut(**vars(c)) for c in itemlevel.conflicts(dims, per_dimension)],
        note=NOTE,
        resamples=resamples,
        timeline_unit=unit,
        timeline=timeline,
        judge=judge,
    )


def _dimension_figures(
    ratings: Ratings, *, project: Project, dimension: int, name: str, units: Units, resamples: int, seed: int
) -> DimensionFigures:
    """α (headline), Fleiss' κ and its coverage, percent agreement, intervals; item-level figures for k ≥ 3 and
    the strength α where verdicts say how much better."""
    data, groups = units.data, units.groups
    count = data.shape[1]
    # κ and α from the units × categories counts: the same values as statsmodels' and krippendorff's (to
    # 1e-12, tests/agreement/test_stats.py) in a fraction of the time (bench/agreement.py prints both).
    counts = stats.category_counts(data)
    fleiss_of, alpha_of = stats.fleiss_statistic(counts, project.overlap), stats.alpha_statistic(counts)
    used = int((counts.sum(axis=1) == project.overlap).sum()) if project.overlap >= 2 else 0
    ones = np.ones(count)
    kappa = fleiss_of(ones) if used else float("nan")
    alpha = alpha_of(ones) if count else float("nan")
    fleiss_ci = alpha_ci = None
    if count and resamples > 0 and len(np.unique(groups)) >= 2:
        wanted = [alpha_of, fleiss_of] if used else [alpha_of]
        intervals = stats.bootstrap_weighted(wanted, groups=groups, resamples=resamples, seed=seed)
        alpha_ci = intervals[0]
        fleiss_ci = intervals[1] if used else None
    totals = counts.sum(axis=0)
    coverage = stats.coverage(used, count)
    out = DimensionFigures(
        dimension=name,
        units=count,
        fleiss_kappa=_finite(kappa),
        fleiss_units=used,
        fleiss_coverage=_finite(coverage) if coverage is not None else None,
        fleiss_ci=_interval(fleiss_ci),
        alpha=_finite(alpha),
        alpha_ci=_interval(alpha_ci),
        percent_agreement=_finite(stats.percent_agreement(data)) if count else None,
        meaning=stats.landis_koch(alpha),
        labels={LABEL_NAMES[c]: int(totals[c]) if count else 0 for c in stats.CATEGORIES},
    )
    if project.k >= 3:
        level = itemlevel.item_level(ratings, k=project.k, dimension=dimension)
        out.item_agreement, out.item_units = level.exact, level.exact_items
        out.kendall_w, out.kendall_w_items = level.kendall_w, level.w_items
        out.kendall_tau, out.kendall_tau_pairs = level.kendall_tau, level.tau_pairs
    out.strength_alpha, out.strength_units = itemlevel.strength_alpha(units)
    return out


def _cohen_pairs(
    overall: Units, annotators: list[int], names: dict[int, str], *, minimum: int, resamples: int, seed: int
) -> list[PairKappa]:
    """Cohen's κ (overall pairs) of every two annotators who share an item, with a bootstrap interval over
    their shared items; below ``minimum`` shared items the pair is listed without a κ."""
    data, groups = overall.data, overall.groups
    rated = ~np.isnan(data)
    out = []
    for x, a in enumerate(annotators):
        for y in range(x + 1, len(annotators)):
            both = rated[x] & rated[y]
            shared_items = len(np.unique(groups[both]))
            if not shared_items:
                continue
            b = annotators[y]
            pair = PairKappa(
                a=names.get(a, str(a)),
                b=names.get(b, str(b)),
                kappa=None,
                shared_units=int(both.sum()),
                shared_items=shared_items,
                enough=shared_items >= minimum,
            )
            if pair.enough:
                kappa_of = stats.cohen_statistic(data[x, both].astype(np.int64), data[y, both].astype(np.int64))
                pair.kappa = _finite(kappa_of(np.ones(int(both.sum()))))
                if resamples > 0:
                    (ci,) = stats.bootstrap_weighted([kappa_of], groups=groups[both], resamples=resamples, seed=seed)
                    pair.kappa_ci = _interval(ci)
            out.append(pair)
    return out


def _add_members_and_gold(
    session: Session, *, project: Project, people: list[AnnotatorFigures], annotators: list[int], names: dict[int, str]
) -> None:
    """Members with no judgment yet get a row — except admins (a project's creator is made a member), who
    appear once they judge; every row gets gold accuracy and the paused flag."""
    gold = gold_accuracy(session, project=project)
    rows = session.execute(
        select(ProjectMember.user_id, ProjectMember.paused, User.role)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id)
    ).all()
    members = {user_id: paused for user_id, paused, _ in rows}
    admins = {user_id for user_id, _, role in rows if role == "admin"}
    known = {p.annotator for p in people}
    for user_id in sorted(set(gold) | set(members)):
        if user_id in admins and user_id not in gold:
            continue
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
    by_name = {names.get(u, str(u)): u for u in set(annotators) | set(gold) | set(members)}
    for person in people:
        member_id = by_name.get(person.annotator)
        if member_id is not None and member_id in gold:
            n, accuracy = gold[member_id]
            person.gold_judgments = n
            person.gold_accuracy = _finite(accuracy) if accuracy is not None else None
            person.below_gold_threshold = accuracy is not None and accuracy < project.gold_min_accuracy
        person.paused = bool(members.get(member_id, False)) if member_id is not None else False
        person.user_id = member_id


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
        .where(Judgment.project_id == project.id, IS_GOLD)
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
    judgments: Judgments, overall: NDArray[np.float64], annotators: list[int], names: dict[int, str], *, k: int
) -> list[AnnotatorFigures]:
    counts = stats.category_counts(overall)  # units × categories
    agreements: dict[int, float | None] = {}
    for row, a in enumerate(annotators):
        rated = np.flatnonzero(~np.isnan(overall[row]))
        mine = overall[row, rated].astype(np.int64)
        others = counts[rated].copy()
        others[np.arange(len(rated)), mine] -= 1  # leave this annotator out
        top = others.max(axis=1)
        # A majority needs other votes and one label ahead of the rest.
        clear = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)
        total = int(clear.sum())
        agree = int((others.argmax(axis=1) == mine)[clear].sum())
        agreements[a] = agree / total if total else None
    known = [v for v in agreements.values() if v is not None]
    typical = float(np.median(known)) if known else 0.0
    out = []
    for a in annotators:
        mine = judgments.annotator == a
        n = int(mine.sum())
        seconds = judgments.seconds[mine]
        seconds = seconds[~np.isnan(seconds)]
        left = judgments.left[mine]
        left = left[left >= 0]
        value = agreements[a]
        p_left, biased = stats.position_bias(int(left.sum()), len(left), k)
        out.append(
            AnnotatorFigures(
                annotator=names.get(a, str(a)),
                judgments=n,
                median_seconds=round(float(np.median(seconds)), 1) if len(seconds) else None,
                majority_agreement=_finite(value) if value is not None else None,
                tie_rate=round(float((judgments.overall[mine] == TIE).sum()) / n, 4) if n else 0.0,
                all_bad_rate=round(float(judgments.all_bad[mine].sum()) / n, 4) if n else 0.0,
                left_choice_rate=round(float(left.mean()), 4) if len(left) else None,
                left_judgments=len(left),
                position_p=float(f"{p_left:.3g}") if p_left is not None else None,
                position_bias=biased,
                # Flagged: agrees with the others' majority clearly less often than the typical annotator, or
                # chooses the candidate shown first far from chance (1/k).
                outlier=biased or (value is not None and len(known) >= 3 and value < typical - OUTLIER_GAP),
            )
        )
    return out


# --- the cache -------------------------------------------------------------------------------------------
