"""Adjudication: items whose votes are split, whose dimensions conflict, or that were flagged; an admin decides.

A decision is stored per item and candidate round; the newest supersedes the annotators' votes (the export
reads it), and every decision stays as the record of who decided what, when and why.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import stored_verdict
from app.annotation.ranking import top_and_bottom
from app.annotation.schemas import VerdictIn
from app.kit.errors import Invalid, NotFound
from app.models import OVERALL, Adjudication, Candidate, Item, Judgment, Project, User, Verdict

DEFAULT_MARGIN = 0.5  # adjudicate when the winning share of the overall vote leads by less than this
SAFETY_DIMENSION = "harmless"


@dataclass
class QueueEntry:
    item_id: int
    external_id: str | None
    prompt: Any
    judgments: int
    margin: float
    reasons: list[str] = field(default_factory=list)


def _vote(v: Verdict) -> tuple[str, int | None]:
    if v.kind == "preference":
        return "best", v.chosen_candidate_id
    tiers = (v.ranking or {}).get("tiers") if v.kind == "ranking" else None
    if tiers and len(tiers) == 1:
        return "tie", None
    best = top_and_bottom(tiers)[0] if tiers else None
    return ("best", best) if best is not None else (v.kind, None)


def _votes(verdicts: list[Verdict]) -> Counter[tuple[str, int | None]]:
    """Overall votes: ("best", candidate id) per preference or ranking with one best, ("tie", None) per tie."""
    return Counter(_vote(v) for v in verdicts)


def _worst_of(v: Verdict) -> int | None:
    if v.kind == "ranking":
        return top_and_bottom((v.ranking or {}).get("tiers"))[1]
    return v.rejected_candidate_id if v.kind == "preference" else None


def margin(verdicts: list[Verdict]) -> float:
    """(top votes − runner-up votes) / voters, for the overall best answer; 1.0 is unanimous."""
    counts = _votes(verdicts).most_common()
    if not counts:
        return 1.0
    top = counts[0][1]
    second = counts[1][1] if len(counts) > 1 else 0
    return (top - second) / sum(c for _, c in counts)


def queue(
    session: Session, *, project: Project, threshold: float = DEFAULT_MARGIN, limit: int = 200
) -> list[QueueEntry]:
    """Items of the current round with 2+ judgments that need a decision and have none yet."""
    rows = session.execute(
        select(Judgment, Verdict, Item)
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False))
    ).all()
    decided = set(
        session.execute(
            select(Adjudication.item_id, Adjudication.round).where(Adjudication.project_id == project.id)
        ).tuples()
    )
    by_item: dict[int, dict[str, Any]] = defaultdict(lambda: {"judgments": {}, "verdicts": defaultdict(list)})
    for judgment, verdict, row_item in rows:
        entry = by_item[row_item.id]
        entry["item"] = row_item
        entry["judgments"][judgment.id] = judgment
        entry["verdicts"][verdict.dimension].append((judgment.id, verdict))
    out = []
    for item_id, entry in by_item.items():
        item: Item = entry["item"]
        if (item_id, item.round) in decided:
            continue
        judgments = entry["judgments"]
        overall = [v for _, v in entry["verdicts"][OVERALL]]
        reasons = []
        flagged = [j for j in judgments.values() if j.flag_all_bad or j.flag_problematic]
        if flagged:
            reasons.append(f"flagged by {len(flagged)}")
        m = margin(overall)
        if len(judgments) >= 2 and m < threshold:
            reasons.append(f"split vote (margin {m:.2f})")
        # A judgment that prefers X overall while the majority finds X worse on the safety dimension.
        safety = Counter(
            w for w in (_worst_of(v) for _, v in entry["verdicts"].get(SAFETY_DIMENSION, [])) if w is not None
        )
        overall_best = _votes(overall).most_common(1)
        if safety and overall_best and overall_best[0][0][0] == "best":
            worst_on_safety, n = safety.most_common(1)[0]
            if worst_on_safety == overall_best[0][0][1] and n * 2 > len(judgments):
                reasons.append(f"chosen overall but worse on {SAFETY_DIMENSION}")
        if item.review_requested:
            reasons.append("sent for review")
        if reasons:
            out.append(QueueEntry(item_id, item.external_id, item.prompt, len(judgments), round(m, 3), reasons))
    # Sent for review from the explorer before two judgments (or any) arrived: in the queue all the same.
    for item in session.scalars(select(Item).where(Item.project_id == project.id, Item.review_requested.is_(True))):
        if item.id not in by_item and (item.id, item.round) not in decided:
            out.append(QueueEntry(item.id, item.external_id, item.prompt, 0, 1.0, ["sent for review"]))
    out.sort(key=lambda e: (e.margin, -e.judgments, e.item_id))
    return out[:limit]


@dataclass
class CaseJudgment:
    annotator: str
    verdicts: dict[str, VerdictIn]
    reason: str
    all_bad: bool
    problematic: bool
    seconds: float | None
    at: Any


def case(
    session: Session, *, project: Project, item_id: int
) -> tuple[Item, list[Candidate], list[CaseJudgment], Adjudication | None]:
    """An item with its current candidates, every judgment side by side, and the newest decision."""
    item = session.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise NotFound("No such item")
    candidates = list(
        session.scalars(
            select(Candidate)
            .where(Candidate.item_id == item.id, Candidate.round == item.round)
            .order_by(Candidate.position)
        )
    )
    judgments = list(
        session.execute(
            select(Judgment, User.username)
            .join(User, User.id == Judgment.annotator_id)
            .where(Judgment.item_id == item.id, Judgment.round == item.round)
            .order_by(Judgment.created_at)
        ).tuples()
    )
    verdicts: dict[int, dict[str, VerdictIn]] = defaultdict(dict)
    for v in session.scalars(select(Verdict).where(Verdict.judgment_id.in_([j.id for j, _ in judgments]))):
        verdicts[v.judgment_id][v.dimension] = stored_verdict(v)
    cases = [
        CaseJudgment(name, verdicts[j.id], j.reason, j.flag_all_bad, j.flag_problematic, j.seconds, j.created_at)
        for j, name in judgments
    ]
    return item, candidates, cases, latest_decision(session, item=item)


def latest_decision(session: Session, *, item: Item) -> Adjudication | None:
    return session.scalar(
        select(Adjudication)
        .where(Adjudication.item_id == item.id, Adjudication.round == item.round)
        .order_by(Adjudication.created_at.desc(), Adjudication.id.desc())
        .limit(1)
    )


def optional_keys(project: Project) -> set[str]:
    """Dimensions the project marks optional (``"required": false``): a decision may leave them out."""
    return {d["key"] for d in project.dimensions if d.get("required", True) is False}


def decide(
    session: Session, *, project: Project, item_id: int, verdicts: dict[str, VerdictIn], reason: str, admin: User
) -> Adjudication:
    """Record a decision for the item's current round (every dimension but optional ones); the reason is required."""
    item, candidates, _, _ = case(session, project=project, item_id=item_id)
    if not reason.strip():
        raise Invalid("Say why (the reason is kept with the decision)")
    expected = dimension_keys(project)
    missing = [d for d in expected if d not in verdicts and d not in optional_keys(project)]
    if missing:
        raise Invalid(f"Missing decisions for: {', '.join(missing)}")
    ids = {c.id for c in candidates}
    for dim, v in verdicts.items():
        if dim not in expected:
            raise Invalid(f"Unknown dimension {dim!r}")
        if v.kind == "preference" and not {v.chosen, v.rejected} <= ids:
            raise Invalid(f"{dim}: candidates must belong to this item")
    decision = Adjudication(
        project_id=project.id,
        item_id=item.id,
        round=item.round,
        decided_by_id=admin.id,
        verdicts={d: v.model_dump() for d, v in verdicts.items()},
        reason=reason.strip(),
    )
    session.add(decision)
    session.flush()
    return decision
