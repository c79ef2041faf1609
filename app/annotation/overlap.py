"""Adaptive overlap: how many judgments an item wants (its target), and when a disagreement reopens it for more.

Every item wants r = ``project.overlap`` judgments while ``project.overlap_min`` is None (adaptive overlap off:
``item.target`` is then ignored). With adaptive overlap on, an item wants its *effective target*: its ``target``
(None: r_min = ``overlap_min``) held between r_min and r_max = ``overlap``. Raising r_min raises every target
below it; lowering r caps them. The queue's invariant is ``claims ≤ effective target ≤ r``, and an item whose
judgments reach its effective target is complete.

When a submit brings an item's judgments to its effective target and that is below r, the votes are looked at
(``should_reopen``): the item is reopened — its target raised by one, in the submit's transaction while the item's
row is locked — if on any dimension ("overall" included) the vote margin is below ``project.adaptive_margin``, or
if the human majority differs from a confident primary judge suggestion (``JUDGE_CONFIDENT``). An edit of a
judgment on a complete item is looked at the same way and may reopen it; nothing ever lowers a target (an edit
that makes the votes agree leaves the one extra judgment wanted). Skips are no votes: they give the claim back
and change no target. Gold items are not limited by r and never reopened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from sqlalchemy import ColumnElement, and_, case, literal, or_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.annotation import repository
from app.judge.repository import primary_suggestions
from app.models import Item, Project

# A judge suggestion this sure of itself (0–1, over both orders) that the human majority contradicts reopens the
# item: either the people or the judge are wrong on it, and one more judgment tells which.
JUDGE_CONFIDENT = 0.8

# An answer a vote gives on one dimension: a candidate id (k = 2: A or B; k ≥ 3: the best candidate), "tie", or
# the sorted ids of a ranking's top tier when several share it.
Answer = Hashable


def is_adaptive(project: Project) -> bool:
    """Whether the project's items want between r_min and r judgments (else every item wants r)."""
    return project.overlap_min is not None


def r_min(project: Project) -> int:
    """The judgments every item gets at least: ``overlap_min``, or r when overlap is not adaptive."""
    return min(project.overlap_min or project.overlap, project.overlap)


def effective_target(project: Project, target: int | None) -> int:
    """The judgments an item of ``target`` wants now: r when not adaptive, else its target within [r_min, r]."""
    if not is_adaptive(project):
        return project.overlap
    return min(max(target if target is not None else r_min(project), r_min(project)), project.overlap)


def has_room(project: Project) -> ColumnElement[bool]:
    """SQL: the item's claims are below its effective target (another annotator may claim it)."""
    if not is_adaptive(project):
        return Item.claims < project.overlap
    return and_(Item.claims < project.overlap, below_min_or_target(project, Item.claims))


def below_min_or_target(
    project: Project, count: ColumnElement[int] | InstrumentedAttribute[int]
) -> ColumnElement[bool]:
    """SQL: ``count`` is below max(target, r_min) (the caller adds "below r")."""
    return or_(count < r_min(project), and_(Item.target.is_not(None), count < Item.target))


def is_complete(project: Project) -> ColumnElement[bool]:
    """SQL: the item has the judgments it wants (its effective target), and was not reopened for more."""
    return complete_clause(project.overlap, project.overlap_min)


def complete_clause(overlap: int, overlap_min: int | None) -> ColumnElement[bool]:
    """``is_complete`` for a project's overlap r and r_min (None: not adaptive), without the project row."""
    count = Item.judgment_count
    if overlap_min is None:
        return count >= overlap
    low = min(overlap_min, overlap)
    return or_(count >= overlap, and_(count >= low, or_(Item.target.is_(None), count >= Item.target)))


def target_clause(overlap: int, overlap_min: int | None) -> ColumnElement[int]:
    """SQL: the item's effective target, for a project's overlap r and r_min (None: not adaptive)."""
    if overlap_min is None:
        return literal(overlap)
    low = min(overlap_min, overlap)
    return case(
        (Item.target.is_(None) | (Item.target <= low), literal(low)),
        (Item.target >= overlap, literal(overlap)),
        else_=Item.target,
    )


# --- the rule, on plain values ------------------------------------------------------------------------------


def answer_of(kind: str, chosen: int | None, tiers: Sequence[Sequence[int]] | None) -> Answer | None:
    """What a verdict (or a judge suggestion) answers on its dimension; None for "n/a" or "unsure" (no vote)."""
    if kind == "tie":
        return "tie"
    if kind == "preference":
        return chosen
    if kind == "ranking" and tiers:
        if len(tiers) == 1:
            return "tie"  # every candidate in one tier
        top = sorted(tiers[0])
        return top[0] if len(top) == 1 else tuple(top)
    return None


def vote_margin(answers: Sequence[Answer]) -> float:
    """(votes for the top answer − votes for the runner-up) / votes; 1.0 without votes (nothing to dispute)."""
    counts = Counter(answers).most_common(2)
    if not counts:
        return 1.0
    runner_up = counts[1][1] if len(counts) > 1 else 0
    return (counts[0][1] - runner_up) / len(answers)


def majority_answer(answers: Sequence[Answer]) -> Answer | None:
    """The answer most votes gave, None when two share the top (or there are none)."""
    counts = Counter(answers).most_common(2)
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def should_reopen(votes: Mapping[str, Sequence[Answer]], judge: Mapping[str, Answer], *, margin: float) -> bool:
    """Whether an item's votes (dimension → answers) disagree: a margin below ``margin`` on some dimension, or a
    majority other than a confident judge's answer (``judge``: dimension → answer, confident ones only)."""
    for dimension, answers in votes.items():
        if not answers:
            continue
        if vote_margin(answers) < margin:
            return True
        suggested = judge.get(dimension)
        if suggested is not None and majority_answer(answers) != suggested:
            return True
    return False


# --- in the submit's transaction ------------------------------------------------------------------------------


def reopen_if_disputed(
    session: Session, *, project: Project, item_id: int, round_: int, judgments: int, target: int | None
) -> bool:
    """After an item's judgments moved to ``judgments`` (its row locked by the caller): raise its target by one
    when they just reached it below r and disagree; returns whether it was reopened."""
    if not is_adaptive(project):
        return False
    wanted = effective_target(project, target)
    if judgments != wanted or wanted >= project.overlap:
        return False
    votes, judge = _votes_and_judge(session, project=project, item_id=item_id, round_=round_)
    if not should_reopen(votes, judge, margin=project.adaptive_margin):
        return False
    session.execute(
        update(Item)
        .where(Item.id == item_id, Item.round == round_)
        .values(target=wanted + 1)
        .execution_options(synchronize_session=False)
    )
    return True


def reopen_after_edit(session: Session, *, project: Project, item_id: int, round_: int) -> bool:
    """After a judgment of the item was edited: reopen the item if it is complete and its votes disagree now."""
    if not is_adaptive(project):
        return False
    row = repository.lock_item_counts(session, item_id=item_id)
    if row is None or row.round != round_ or row.is_gold:
        return False
    return reopen_if_disputed(
        session, project=project, item_id=item_id, round_=round_, judgments=row.judgment_count, target=row.target
    )


def _votes_and_judge(
    session: Session, *, project: Project, item_id: int, round_: int
) -> tuple[dict[str, list[Answer]], dict[str, Answer]]:
    """The item round's votes by dimension, and the primary judge's confident answers by dimension."""
    votes: dict[str, list[Answer]] = {}
    for dimension, kind, chosen, ranking in repository.verdicts_of_round(session, item_id=item_id, round_=round_):
        answer = answer_of(kind, chosen, (ranking or {}).get("tiers"))
        if answer is not None:
            votes.setdefault(dimension, []).append(answer)
    judge: dict[str, Answer] = {}
    for (_, dimension), suggestion in primary_suggestions(session, project=project, item_ids=[item_id]).items():
        if suggestion.round != round_ or (suggestion.confidence or 0.0) < JUDGE_CONFIDENT:
            continue
        answer = answer_of(suggestion.kind, suggestion.chosen_candidate_id, (suggestion.ranking or {}).get("tiers"))
        if answer is not None:
            judge[dimension] = answer
    return votes, judge


__all__ = [
    "JUDGE_CONFIDENT",
    "answer_of",
    "effective_target",
    "has_room",
    "is_adaptive",
    "complete_clause",
    "is_complete",
    "majority_answer",
    "r_min",
    "reopen_after_edit",
    "reopen_if_disputed",
    "should_reopen",
    "target_clause",
    "vote_margin",
]
