"""The review stream: a case opens pre-filled (the stored decision, else the majority), a decision moves on to
the next open case in queue order, and the decided cases stay listed (newest first) to re-open and re-decide."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, aliased

from app.adjudication import service
from app.adjudication.majority import form_value, majority, parse_form_value, reason_for
from app.annotation.dimensions import dimension_keys, letters_of
from app.annotation.ranking import verdict_text
from app.annotation.schemas import VerdictIn
from app.models import OVERALL, Adjudication, Candidate, Item, Project, User

DECIDED_PAGE = 50


@dataclass
class CaseView:
    """One case as the page shows it: ``prefill`` holds the form's starting values by dimension, taken from
    ``source`` ("decision": the stored one; "majority": the annotators' majority)."""

    item: Item
    candidates: list[Candidate]
    judgments: list[service.CaseJudgment]
    decision: Adjudication | None
    dimensions: list[str]
    letters: dict[int, str]
    majority: dict[str, str]
    prefill: dict[str, str]
    source: str
    no_majority: list[str] = field(default_factory=list)
    optional: set[str] = field(default_factory=set)
    decided_by: str | None = None
    shown: list[dict[str, str]] = field(default_factory=list)  # each judgment's verdicts as the page words them


def case_view(session: Session, *, project: Project, item_id: int) -> CaseView:
    item, candidates, judgments, decision = service.case(session, project=project, item_id=item_id)
    dims = dimension_keys(project)
    letters = letters_of([c.id for c in candidates])
    votes = majority((j.verdicts for j in judgments), dims)
    by_majority = {d: form_value(v, letters) for d, v in votes.items()}
    stored = decision.verdicts if decision is not None else {}
    prefill = {d: form_value(stored.get(d), letters) for d in dims} if decision is not None else dict(by_majority)
    optional = service.optional_keys(project)
    who = session.get(User, decision.decided_by_id) if decision is not None and decision.decided_by_id else None
    return CaseView(
        item=item,
        candidates=candidates,
        judgments=judgments,
        decision=decision,
        dimensions=dims,
        letters=letters,
        majority=by_majority,
        prefill=prefill,
        source="decision" if decision is not None else "majority",
        no_majority=[d for d, v in by_majority.items() if not v and d not in optional],
        optional=optional,
        decided_by=who.username if who is not None else None,
        shown=[{d: _shown(v, letters) for d, v in j.verdicts.items()} for j in judgments],
    )


def _shown(verdict: VerdictIn, letters: dict[int, str]) -> str:
    """A judgment's verdict in the case's letters: "A ≻ B", "A ≫ B" (a strength), "C ≫ A = B > D", or its kind."""
    text = verdict_text(
        verdict.kind,
        verdict.chosen,
        verdict.rejected,
        letters,
        strength=verdict.strength,
        ranking=verdict.ranking,
        much=verdict.much,
    )
    return text or verdict.kind


def next_case(session: Session, *, project: Project, after: int | None = None) -> int | None:
    """The next open case in queue order (closest vote first), other than ``after``; None when none is left."""
    return next((e.item_id for e in service.queue(session, project=project) if e.item_id != after), None)


def decide_from_form(
    session: Session, *, project: Project, item_id: int, answers: dict[str, str], reason: str, admin: User
) -> tuple[Adjudication, int | None]:
    """Decide from the page's form (letters or 1-based numbers per dimension). A blank reason is allowed only
    when the decision is the majority's on every dimension. Returns the decision and the next open case."""
    _, candidates, judgments, _ = service.case(session, project=project, item_id=item_id)
    ids = [c.id for c in candidates]
    dims = dimension_keys(project)
    optional = service.optional_keys(project)
    verdicts = {
        d: parse_form_value(d, answers.get(d) or "", ids)
        for d in dims
        if d not in optional or (answers.get(d) or "").strip()
    }
    why = reason_for(verdicts, majority((j.verdicts for j in judgments), dims), reason)
    decision = service.decide(session, project=project, item_id=item_id, verdicts=verdicts, reason=why, admin=admin)
    return decision, next_case(session, project=project, after=item_id)


@dataclass
class DecidedEntry:
    decision_id: int
    item_id: int
    external_id: str | None
    prompt: Any
    round: int
    decided_by: str | None
    decided_at: datetime
    reason: str
    verdicts: dict[str, str]  # by dimension, as the form writes them: "A>B", "tie", "na"
    overall: str
    differs: list[str]  # dimensions whose verdict is not the overall one


def decided(
    session: Session, *, project: Project, before: int | None = None, limit: int = DECIDED_PAGE
) -> tuple[list[DecidedEntry], int | None]:
    """The current decision of each decided item (its newest, on the item's current round), newest first, keyset
    paginated by decision id: pass the returned cursor as ``before`` for the next page (None: no more)."""
    newer = aliased(Adjudication)
    query = (
        select(Adjudication, Item, User.username)
        .join(Item, and_(Item.id == Adjudication.item_id, Item.round == Adjudication.round))
        .outerjoin(User, User.id == Adjudication.decided_by_id)
        .where(
            Adjudication.project_id == project.id,
            ~exists().where(
                newer.item_id == Adjudication.item_id, newer.round == Adjudication.round, newer.id > Adjudication.id
            ),
        )
        .order_by(Adjudication.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(Adjudication.id < before)
    rows = session.execute(query).tuples().all()
    page, more = rows[:limit], len(rows) > limit
    positions: dict[int, list[int]] = defaultdict(list)
    for cand_item, cand_id in session.execute(
        select(Candidate.item_id, Candidate.id)
        .join(Item, and_(Item.id == Candidate.item_id, Item.round == Candidate.round))
        .where(Candidate.item_id.in_([item.id for _, item, _ in page]))
        .order_by(Candidate.item_id, Candidate.position)
    ).tuples():
        positions[cand_item].append(cand_id)
    out = []
    for decision, item, username in page:
        letters = letters_of(positions[item.id])
        values = {d: form_value(VerdictIn.model_validate(v), letters) for d, v in decision.verdicts.items()}
        overall = values.get(OVERALL, "")
        out.append(
            DecidedEntry(
                decision_id=decision.id,
                item_id=item.id,
                external_id=item.external_id,
                prompt=item.prompt,
                round=decision.round,
                decided_by=username,
                decided_at=decision.created_at,
                reason=decision.reason,
                verdicts=values,
                overall=overall,
                differs=[d for d, v in values.items() if d != OVERALL and v != overall],
            )
        )
    return out, (page[-1][0].id if more and page else None)
