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

from app.agreement import stats
from app.agreement.loading import PREFERENCE, TIE, Judgments, Ratings, load
from app.agreement.schemas import AgreementOut, AnnotatorFigures, DimensionFigures, IntervalOut, PairKappa
from app.models import IS_GOLD, OVERALL, Candidate, Item, Judgment, Project, ProjectMember, User, Verdict

MIN_SHARED_FOR_COHEN = 10
OUTLIER_GAP = 0.2
RESAMPLES = 200  # bootstrap resamples behind the cached intervals
LABEL_NAMES = {stats.FIRST: "first", stats.SECOND: "second", stats.TIE: "tie"}
NOTE = (
    "Unit: a preference pair (two candidates of one item) on one dimension. n.a. is missing, not a category. "
    "Fleiss' κ uses only pairs rated by exactly r annotators; Krippendorff's α uses every pair with two or more "
    "ratings. 95% intervals resample items (bootstrap)."
)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _interval(interval: stats.Interval | None) -> IntervalOut | None:
    return None if interval is None else IntervalOut(low=_finite(interval.low), high=_finite(interval.high))


def _pair_labels(ratings: Ratings, i: int, j: int) -> NDArray[np.int64]:
    """The label each verdict implies on the pair (i, j), i < j, or -1 (as ``stats.implied_pairs``)."""
    c, w = ratings.chosen, ratings.rejected
    label = np.select(
        [c == i, c == j, w == i, w == j],
        [stats.FIRST, stats.SECOND, stats.SECOND, stats.FIRST],
        default=-1,
    )
    label = np.where(ratings.kind == PREFERENCE, label, -1)
    return np.where(ratings.kind == TIE, stats.TIE, label)


def _matrices(
    ratings: Ratings, *, k: int, dimensions: int, columns: NDArray[np.int64]
) -> list[tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """Per dimension: the raters × units matrix (NaN missing) over units with two or more ratings, and the
    item of each unit (the bootstrap's group)."""
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    labels = np.stack([_pair_labels(ratings, i, j) for i, j in pairs])  # pairs × verdicts
    raters = int(columns.max()) + 1 if len(columns) else 0
    out = []
    for dim in range(dimensions):
        mine = ratings.dimension == dim
        p_idx, v_idx = np.nonzero(labels[:, mine] >= 0)
        verdicts = np.flatnonzero(mine)[v_idx]
        unit = ratings.item[verdicts] * len(pairs) + p_idx
        keys, inverse, sizes = np.unique(unit, return_inverse=True, return_counts=True)
        keep = sizes >= 2
        new_index = np.cumsum(keep) - 1
        rows = keep[inverse]
        data = np.full((raters, int(keep.sum())), np.nan)
        data[columns[verdicts[rows]], new_index[inverse[rows]]] = labels[p_idx[rows], verdicts[rows]]
        out.append((data, keys[keep] // len(pairs)))
    return out


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
    matrices = _matrices(ratings, k=project.k, dimensions=len(dims), columns=column_of)

    figures = []
    for dim, (data, groups) in zip(dims, matrices, strict=True):
        units = data.shape[1]
        # κ and α from the units × categories counts: the same values as statsmodels' and krippendorff's (to
        # 1e-12, tests/agreement/test_stats.py) in a fraction of the time (bench/agreement.py prints both).
        counts = stats.category_counts(data)
        fleiss_of, alpha_of = stats.fleiss_statistic(counts, project.overlap), stats.alpha_statistic(counts)
        used = int((counts.sum(axis=1) == project.overlap).sum()) if project.overlap >= 2 else 0
        ones = np.ones(units)
        kappa = fleiss_of(ones) if used else float("nan")
        alpha = alpha_of(ones) if units else float("nan")
        fleiss_ci = alpha_ci = None
        if units and resamples > 0 and len(np.unique(groups)) >= 2:
            wanted = [alpha_of]
            if used:
                wanted.append(fleiss_of)
            intervals = stats.bootstrap_weighted(wanted, groups=groups, resamples=resamples, seed=seed)
            alpha_ci = intervals[0]
            fleiss_ci = intervals[1] if used else None
        totals = counts.sum(axis=0)
        figures.append(
            DimensionFigures(
                dimension=dim,
                units=units,
                fleiss_kappa=_finite(kappa),
                fleiss_units=used,
                fleiss_ci=_interval(fleiss_ci),
                alpha=_finite(alpha),
                alpha_ci=_interval(alpha_ci),
                percent_agreement=_finite(stats.percent_agreement(data)) if units else None,
                meaning=stats.landis_koch(kappa if not math.isnan(kappa) else alpha),
                labels={LABEL_NAMES[c]: int(totals[c]) if units else 0 for c in stats.CATEGORIES},
            )
        )

    overall = matrices[0][0]
    pairs = []
    for x, a in enumerate(annotators):
        for y in range(x + 1, len(annotators)):
            kappa, shared = stats.cohen(overall[x], overall[y])
            if shared >= MIN_SHARED_FOR_COHEN:
                b = annotators[y]
                pairs.append(
                    PairKappa(a=names.get(a, str(a)), b=names.get(b, str(b)), kappa=_finite(kappa), shared_units=shared)
                )

    people = _annotator_figures(judgments, overall, annotators, names)
    _add_members_and_gold(session, project=project, people=people, annotators=annotators, names=names)
    assert loaded.timeline is not None
    unit, timeline = loaded.timeline
    return AgreementOut(
        project=project.slug,
        overlap=project.overlap,
        dimensions=figures,
        pairs=pairs,
        annotators=people,
        note=NOTE,
        resamples=resamples,
        timeline_unit=unit,
        timeline=timeline,
    )


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
    judgments: Judgments, overall: NDArray[np.float64], annotators: list[int], names: dict[int, str]
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
        out.append(
            AnnotatorFigures(
                annotator=names.get(a, str(a)),
                judgments=n,
                median_seconds=round(float(np.median(seconds)), 1) if len(seconds) else None,
                majority_agreement=_finite(value) if value is not None else None,
                tie_rate=round(float((judgments.overall[mine] == TIE).sum()) / n, 4) if n else 0.0,
                all_bad_rate=round(float(judgments.all_bad[mine].sum()) / n, 4) if n else 0.0,
                left_choice_rate=round(float(left.mean()), 4) if len(left) else None,
                # Flagged: agrees with the others' majority clearly less often than the typical annotator.
                outlier=value is not None and len(known) >= 3 and value < typical - OUTLIER_GAP,
            )
        )
    return out


# --- the cache -------------------------------------------------------------------------------------------
