"""How far a judge model can be trusted: its agreement with people, per dimension ("overall" included).

- ``judge_kappa``: Cohen's κ of a judge (a rater of its own) against the human majority label of each pair
  (two candidates of one item, canonical positions i < j; labels i ≻ j, j ≻ i, tie — the export's and the
  agreement figures' pair rules) that the judge and at least one person labelled. A pair whose human votes tie
  for the top label has no majority and is left out; an "unsure" suggestion (the orders asked disagreed) labels
  nothing, so its pairs are missing, not a category. The interval resamples items (bootstrap).
- ``judge_gold``: the judge's accuracy on gold items, as people's gold accuracy is counted, with a Wilson interval.
- ``anchoring``: on items with a consistent suggestion of the primary judge, the share of people's verdicts
  agreeing with it when it was shown before submitting vs when it was hidden, and the difference with a
  Newcombe (hybrid Wilson) interval.

The judge never enters the human-only figures (α, Fleiss' κ, Cohen pairs, item-level agreement, outliers):
``service`` computes those from people's verdicts alone and adds these figures beside them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.agreement import stats
from app.agreement.loading import Ratings, load
from app.agreement.schemas import AnchoringOut, AnnotatorFigures, IntervalOut, JudgeDimension, JudgeOut
from app.agreement.units import candidate_pairs, pair_labels
from app.export.pairs import Pair, pairs_of, ranked_of
from app.judge.repository import judge_names, primary_suggestions
from app.models import OVERALL, Candidate, Item, Judgment, Project, Suggestion, Verdict

Interval = tuple[float, float]
Z95 = 1.959963984540054


@dataclass
class KappaFigure:
    """Cohen's κ (None when undefined: no pairs, or one label only), the pairs it rests on and a 95% bootstrap
    interval over items (None with fewer than two items)."""

    value: float | None
    n: int
    interval: Interval | None
    agreement: float | None = None  # the observed share of those pairs where the judge gives the majority label


@dataclass
class Share:
    """A proportion with its count, its base and a 95% Wilson interval (all None/0 without a base)."""

    value: float | None
    hits: int
    n: int
    interval: Interval | None


@dataclass
class Anchoring:
    """Agreement of people with the primary judge's suggestion when it was shown vs hidden, on one dimension."""

    shown: Share
    hidden: Share
    difference: float | None  # shown − hidden
    interval: Interval | None  # Newcombe's hybrid Wilson interval of the difference


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def wilson(hits: int, n: int) -> Share:
    """The share hits / n with its 95% Wilson score interval."""
    if n == 0:
        return Share(None, 0, 0, None)
    p = hits / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return Share(round(p, 4), hits, n, (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)))


def newcombe(a: Share, b: Share) -> Interval | None:
    """Newcombe's (1998, method 10) interval of the difference of two independent proportions a − b."""
    if a.value is None or b.value is None or a.interval is None or b.interval is None:
        return None
    d = a.value - b.value
    (la, ua), (lb, ub) = a.interval, b.interval
    low = d - math.sqrt((a.value - la) ** 2 + (ub - b.value) ** 2)
    high = d + math.sqrt((ua - a.value) ** 2 + (b.value - lb) ** 2)
    return round(low, 4), round(high, 4)


def chosen_judge(session: Session, project: Project, judge: str | None) -> str | None:
    """``judge``, else the primary judge of the settings, else (none configured) the earliest stored one."""
    if judge:
        return judge
    names = judge_names(project)
    if names:
        return names[0]
    first: str | None = session.scalar(
        select(Suggestion.judge).where(Suggestion.project_id == project.id).order_by(Suggestion.id).limit(1)
    )
    return first


def _positions(session: Session, project: Project) -> dict[int, int]:
    """Candidate id → canonical position, on the current round of the project's items."""
    rows = session.execute(
        select(Candidate.id, Candidate.position)
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == project.id)
    )
    return dict(rows.tuples().all())


def suggestion_pairs(suggestion: Any, position: dict[int, int], k: int) -> dict[Pair, int]:
    """The labelled pairs a suggestion implies, as a verdict's (``app.export.pairs``, "implied"); none when
    unsure. ``suggestion`` has kind, chosen/rejected candidate ids and ranking (a Suggestion or a row)."""
    if suggestion.kind == "unsure":
        return {}
    ranked = ranked_of(suggestion.ranking, position) if suggestion.kind == "ranking" else None
    chosen = position.get(suggestion.chosen_candidate_id) if suggestion.chosen_candidate_id else None
    rejected = position.get(suggestion.rejected_candidate_id) if suggestion.rejected_candidate_id else None
    if suggestion.kind == "preference" and (chosen is None or rejected is None):
        return {}  # a candidate of another round
    return pairs_of(suggestion.kind, chosen, rejected, ranked, k, "implied")


def _judge_units(
    session: Session, project: Project, judge: str, *, gold: bool
) -> tuple[dict[str, dict[int, int]], dict[str, int], dict[str, int], list[Any]]:
    """Per dimension: unit key (item × pairs + pair index) → the judge's label; suggestions and unsure ones per
    dimension; the rows (item, dimension, gold answer, pairs) for gold scoring."""
    rows = session.execute(
        select(
            Suggestion.item_id,
            Suggestion.dimension,
            Suggestion.kind,
            Suggestion.chosen_candidate_id,
            Suggestion.rejected_candidate_id,
            Suggestion.ranking,
            Item.gold,
        )
        .join(Item, (Item.id == Suggestion.item_id) & (Item.round == Suggestion.round))
        .where(Suggestion.project_id == project.id, Suggestion.judge == judge, Item.is_gold.is_(gold))
    ).all()
    position = _positions(session, project)
    index = {pair: n for n, pair in enumerate(candidate_pairs(project.k))}
    labels: dict[str, dict[int, int]] = defaultdict(dict)
    total: dict[str, int] = defaultdict(int)
    unsure: dict[str, int] = defaultdict(int)
    scored = []
    for row in rows:
        total[row.dimension] += 1
        unsure[row.dimension] += row.kind == "unsure"
        implied = suggestion_pairs(row, position, project.k)
        for pair, label in implied.items():
            labels[row.dimension][row.item_id * len(index) + index[pair]] = label
        scored.append((row, implied))
    return labels, total, unsure, scored


def human_majority(ratings: Ratings, *, k: int, dimension: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The units (item × pairs + pair index, sorted) of one dimension with a clear human majority label, and
    that label. A tie for the top label between people: no majority, the unit is left out."""
    pairs = candidate_pairs(k)
    mine = ratings.dimension == dimension
    if not mine.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    labels = np.stack([pair_labels(ratings, i, j)[mine] for i, j in pairs])  # pairs × verdicts
    p_idx, v_idx = np.nonzero(labels >= 0)
    unit = ratings.item[mine][v_idx] * len(pairs) + p_idx
    keys, inverse = np.unique(unit, return_inverse=True)
    counts = np.zeros((len(keys), len(stats.CATEGORIES)), dtype=np.int64)
    np.add.at(counts, (inverse, labels[p_idx, v_idx]), 1)
    top = counts.max(axis=1)
    clear = (counts == top[:, None]).sum(axis=1) == 1
    return keys[clear], counts.argmax(axis=1)[clear]


def _kappa(
    x: NDArray[np.int64], y: NDArray[np.int64], groups: NDArray[np.int64], resamples: int, seed: int
) -> KappaFigure:
    kappa_of = stats.cohen_statistic(x, y)
    value = _round(kappa_of(np.ones(len(x)))) if len(x) else None
    agreement = round(float((x == y).mean()), 4) if len(x) else None
    interval = None
    if value is not None and resamples > 0 and len(np.unique(groups)) >= 2:
        (ci,) = stats.bootstrap_weighted([kappa_of], groups=groups, resamples=resamples, seed=seed)
        low, high = _round(ci.low), _round(ci.high)
        interval = (low, high) if low is not None and high is not None else None
    return KappaFigure(value=value, n=len(x), interval=interval, agreement=agreement)


def judge_kappa(
    session: Session,
    *,
    project: Project,
    judge: str | None = None,
    ratings: Ratings | None = None,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, KappaFigure]:
    """Per dimension ("overall" first): Cohen's κ of ``judge`` (the primary judge when None) against the human
    majority on the pairs both labelled, current candidate round, gold items left out (see the module)."""
    dims = [OVERALL, *project.dimension_keys]
    name = chosen_judge(session, project, judge)
    if name is None:
        return {d: KappaFigure(None, 0, None) for d in dims}
    if ratings is None:
        ratings = load(session, project=project).ratings
    judged, _, _, _ = _judge_units(session, project, name, gold=False)
    npairs = len(candidate_pairs(project.k))
    out = {}
    for d, dim in enumerate(dims):
        keys, majority = human_majority(ratings, k=project.k, dimension=d)
        mine = judged.get(dim, {})
        judge_label = np.array([mine.get(int(key), -1) for key in keys], dtype=np.int64)
        both = judge_label >= 0
        out[dim] = _kappa(judge_label[both], majority[both], keys[both] // npairs, resamples, seed)
    return out


def _gold_hit(want: dict[str, Any], row: Any, position: dict[int, int], k: int) -> bool:
    """Whether a suggestion matches a gold answer, as people's verdicts are scored (``service.gold_accuracy``)."""
    if want["kind"] == "tie":
        return bool(row.kind == "tie")
    if row.kind != "preference":
        return False
    chosen, rejected = position.get(row.chosen_candidate_id), position.get(row.rejected_candidate_id)
    if k == 2:
        return bool(chosen == want["chosen"])
    return bool((chosen, rejected) == (want["chosen"], want["rejected"]))


def judge_gold(session: Session, *, project: Project, judge: str | None = None) -> dict[str, Share]:
    """Per dimension with gold answers: the judge's share of them matched ("either" skipped; unsure counts as a
    miss — it gave no answer where one was expected), with a Wilson interval."""
    name = chosen_judge(session, project, judge)
    if name is None:
        return {}
    _, _, _, scored = _judge_units(session, project, name, gold=True)
    position = _positions(session, project)
    hits: dict[str, list[bool]] = defaultdict(list)
    for row, _ in scored:
        want = (row.gold or {}).get(row.dimension)
        if want and want["kind"] != "either":
            hits[row.dimension].append(_gold_hit(want, row, position, project.k))
    dims = [OVERALL, *project.dimension_keys]
    return {d: wilson(sum(hits[d]), len(hits[d])) for d in dims if hits.get(d)}


def judge_coverage(session: Session, *, project: Project, judge: str | None = None) -> dict[str, tuple[Share, Share]]:
    """Per dimension: the share of ordinary items (current round) with a consistent suggestion of the judge, and
    the share of its suggestions that are "unsure"."""
    name = chosen_judge(session, project, judge)
    dims = [OVERALL, *project.dimension_keys]
    items = session.scalar(select(func.count()).where(Item.project_id == project.id, Item.is_gold.is_(False)))
    if name is None:
        return {d: (wilson(0, int(items or 0)), wilson(0, 0)) for d in dims}
    _, total, unsure, _ = _judge_units(session, project, name, gold=False)
    return {
        d: (wilson(total.get(d, 0) - unsure.get(d, 0), int(items or 0)), wilson(unsure.get(d, 0), total.get(d, 0)))
        for d in dims
    }


def _agrees(verdict: dict[Pair, int], suggested: dict[Pair, int]) -> bool | None:
    """A verdict agrees with a suggestion when it gives the same label on every pair both label; None when they
    share no pair (an n.a. verdict, say)."""
    shared = verdict.keys() & suggested.keys()
    return all(verdict[p] == suggested[p] for p in shared) if shared else None


def anchoring(session: Session, *, project: Project) -> dict[str, Anchoring]:
    """Per dimension: people's agreement with the primary judge's consistent suggestion when it was shown before
    submitting (``Judgment.suggestion_shown`` True) vs hidden (False); unknown (None) left out."""
    chosen, rejected = aliased(Candidate), aliased(Candidate)
    rows = session.execute(
        select(
            Judgment.item_id,
            Judgment.suggestion_shown,
            Verdict.dimension,
            Verdict.kind,
            chosen.position,
            rejected.position,
            Verdict.ranking,
        )
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .outerjoin(chosen, chosen.id == Verdict.chosen_candidate_id)
        .outerjoin(rejected, rejected.id == Verdict.rejected_candidate_id)
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False), Judgment.suggestion_shown.is_not(None))
    ).all()
    suggestions = primary_suggestions(session, project=project, item_ids={row.item_id for row in rows})
    position = _positions(session, project)
    tally: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
    for item_id, shown, dimension, kind, chosen_pos, rejected_pos, ranking in rows:
        suggestion = suggestions.get((item_id, dimension))
        if suggestion is None or suggestion.kind == "unsure" or kind == "na":
            continue
        ranked = ranked_of(ranking, position) if kind == "ranking" else None
        verdict = pairs_of(kind, chosen_pos, rejected_pos, ranked, project.k, "implied")
        agree = _agrees(verdict, suggestion_pairs(suggestion, position, project.k))
        if agree is not None:
            tally[dimension, bool(shown)][0] += agree
            tally[dimension, bool(shown)][1] += 1
    out = {}
    for dim in [OVERALL, *project.dimension_keys]:
        shown_share, hidden_share = wilson(*tally[dim, True]), wilson(*tally[dim, False])
        both = shown_share.value is not None and hidden_share.value is not None
        out[dim] = Anchoring(
            shown=shown_share,
            hidden=hidden_share,
            difference=round(shown_share.value - hidden_share.value, 4) if both else None,  # type: ignore[operator]
            interval=newcombe(shown_share, hidden_share),
        )
    return out


def stored_judges(session: Session, project: Project) -> list[str]:
    """The judges with suggestions in the project: those of the settings in their order, then the others."""
    found = set(session.scalars(select(Suggestion.judge).where(Suggestion.project_id == project.id).distinct()))
    listed = [name for name in judge_names(project) if name in found]
    return listed + sorted(found - set(listed))


def _out(interval: Interval | None) -> IntervalOut | None:
    return None if interval is None else IntervalOut(low=interval[0], high=interval[1])


def judge_figures(
    session: Session, *, project: Project, ratings: Ratings, resamples: int, seed: int = 0
) -> tuple[JudgeOut | None, list[AnnotatorFigures]]:
    """The "Judge vs people" section (primary judge) and one annotator-table row per judge with suggestions;
    (None, []) when the project has none."""
    judges = stored_judges(session, project)
    if not judges:
        return None, []
    rows = []
    primary: JudgeOut | None = None
    for name in judges:
        kappa = judge_kappa(session, project=project, judge=name, ratings=ratings, resamples=resamples, seed=seed)
        gold = judge_gold(session, project=project, judge=name)
        coverage = judge_coverage(session, project=project, judge=name)
        overall_gold = gold.get(OVERALL)
        rows.append(
            AnnotatorFigures(
                annotator=f"judge: {name}",
                judgments=coverage[OVERALL][1].n - coverage[OVERALL][1].hits,
                median_seconds=None,
                majority_agreement=kappa[OVERALL].agreement,
                tie_rate=0.0,
                all_bad_rate=0.0,
                left_choice_rate=None,
                outlier=False,
                gold_judgments=overall_gold.n if overall_gold else 0,
                gold_accuracy=overall_gold.value if overall_gold else None,
                is_judge=True,
            )
        )
        if primary is None:
            effects = anchoring(session, project=project)
            primary = JudgeOut(
                judge=name,
                judges=judges,
                dimensions=[_dimension(d, kappa[d], gold.get(d), coverage[d], effects[d]) for d in kappa],
            )
    return primary, rows


def _dimension(
    name: str, kappa: KappaFigure, gold: Share | None, coverage: tuple[Share, Share], effect: Anchoring
) -> JudgeDimension:
    covered, unsure = coverage
    shown = effect.shown.n > 0 and effect.hidden.n > 0
    return JudgeDimension(
        dimension=name,
        kappa=kappa.value,
        kappa_n=kappa.n,
        kappa_ci=_out(kappa.interval),
        meaning=stats.landis_koch(kappa.value if kappa.value is not None else float("nan")),
        majority_agreement=kappa.agreement,
        gold_accuracy=gold.value if gold else None,
        gold_n=gold.n if gold else 0,
        gold_ci=_out(gold.interval) if gold else None,
        coverage=covered.value,
        suggestions=unsure.n,
        unsure_rate=unsure.value,
        anchoring=AnchoringOut(
            shown_rate=effect.shown.value,
            shown_n=effect.shown.n,
            hidden_rate=effect.hidden.value,
            hidden_n=effect.hidden.n,
            difference=effect.difference,
            difference_ci=_out(effect.interval),
        )
        if shown
        else None,
    )
