"""An item's full record for its page: every judgment (every round) with its votes per dimension, reason, flags
and seconds; every skip; every adjudication decision; candidates carry their generation parameters."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.annotation.ranking import verdict_text
from app.models import Adjudication, Assignment, Candidate, Item, Judgment, User, Verdict


@dataclass
class JudgmentRecord:
    id: int
    annotator: str
    round: int
    votes: dict[str, str]  # by dimension: "1 ≻ 2", "1 ≫ 2", "3 > 1 = 2", "tie", "n/a" (canonical candidate numbers)
    reason: str
    all_bad: bool
    problematic: bool
    seconds: float | None
    version: int
    at: datetime


@dataclass
class SkipRecord:
    annotator: str
    round: int
    reason: str
    at: datetime


@dataclass
class DecisionRecord:
    by: str
    round: int
    votes: dict[str, str]
    reason: str
    at: datetime


@dataclass
class History:
    judgments: list[JudgmentRecord] = field(default_factory=list)
    skips: list[SkipRecord] = field(default_factory=list)
    decisions: list[DecisionRecord] = field(default_factory=list)


def vote_text(
    kind: str | None,
    chosen: int | None,
    rejected: int | None,
    numbers: dict[int, int],
    *,
    strength: int | None = None,
    ranking: dict[str, Any] | None = None,
) -> str:
    """A verdict as the page shows it, in canonical candidate numbers: "1 ≻ 2", "1 ≫ 2" (much better; ≳ slightly),
    a ranking "3 ≫ 1 = 2 > 4", "tie" or "n/a"."""
    names = {cid: str(n) for cid, n in numbers.items()}
    tiers, much = (ranking or {}).get("tiers"), (ranking or {}).get("much")
    shown = verdict_text(kind, chosen, rejected, names, strength=strength, ranking=tiers, much=much)
    if shown is not None:
        return shown
    return "tie" if kind == "tie" else "n/a"


def history(session: Session, *, item: Item, candidates: list[Candidate]) -> History:
    """Everything that happened to ``item``, oldest first."""
    numbers = {c.id: c.position + 1 for c in candidates}
    out = History()
    judgments = session.execute(
        select(Judgment, User.username)
        .join(User, User.id == Judgment.annotator_id)
        .where(Judgment.item_id == item.id)
        .order_by(Judgment.round, Judgment.created_at, Judgment.id)
    ).tuples()
    votes: dict[int, dict[str, str]] = defaultdict(dict)
    records = list(judgments)
    for v in session.scalars(select(Verdict).where(Verdict.judgment_id.in_([j.id for j, _ in records]))):
        votes[v.judgment_id][v.dimension] = vote_text(
            v.kind, v.chosen_candidate_id, v.rejected_candidate_id, numbers, strength=v.strength, ranking=v.ranking
        )
    for j, name in records:
        out.judgments.append(
            JudgmentRecord(
                j.id,
                name,
                j.round,
                votes[j.id],
                j.reason,
                j.flag_all_bad,
                j.flag_problematic,
                j.seconds,
                j.version,
                j.created_at,
            )
        )
    skips = session.execute(
        select(Assignment, User.username)
        .join(User, User.id == Assignment.annotator_id)
        .where(Assignment.item_id == item.id, Assignment.status == "skipped")
        .order_by(Assignment.updated_at)
    ).tuples()
    out.skips = [SkipRecord(name, a.round, a.skip_reason or "", a.updated_at) for a, name in skips]
    decider = aliased(User)
    decisions = session.execute(
        select(Adjudication, decider.username)
        .outerjoin(decider, decider.id == Adjudication.decided_by_id)
        .where(Adjudication.item_id == item.id)
        .order_by(Adjudication.created_at, Adjudication.id)
    ).tuples()
    for d, name in decisions:
        shown: dict[str, str] = {}
        for dim, verdict in (d.verdicts or {}).items():
            given: dict[str, Any] = verdict if isinstance(verdict, dict) else {}
            ranked = {"tiers": given.get("ranking"), "much": given.get("much")} if given.get("ranking") else None
            shown[dim] = vote_text(
                given.get("kind"),
                given.get("chosen"),
                given.get("rejected"),
                numbers,
                strength=given.get("strength"),
                ranking=ranked,
            )
        out.decisions.append(DecisionRecord(name or "—", d.round, shown, d.reason, d.created_at))
    return out
