"""Bulk actions on chosen items: mark gold (the majority's answers), send to adjudication, regenerate, exclude
from export (and include again). Each takes item ids of one project; ids of other projects are refused."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.annotation.dimensions import dimension_keys
from app.explorer.schemas import BulkOut
from app.generation import service as generation
from app.generation.schemas import JobIn
from app.items import service as items
from app.kit.errors import Invalid
from app.models import OVERALL, Candidate, Item, Judgment, Project, User, Verdict


def _project_ids(session: Session, project: Project, item_ids: list[int]) -> list[int]:
    wanted = sorted(set(item_ids))
    found = list(session.scalars(select(Item.id).where(Item.project_id == project.id, Item.id.in_(wanted))))
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise Invalid(f"Items not in this project: {unknown[:10]}")
    return found


def _majority_answers(session: Session, item: Item, dims: list[str]) -> dict[str, dict[str, object]] | None:
    """The expected answers of a gold item from the current round's judgments: per dimension the answer more than
    half of the judgments gave (canonical positions), else "either"; None without such an overall answer."""
    position = dict(
        session.execute(
            select(Candidate.id, Candidate.position).where(Candidate.item_id == item.id, Candidate.round == item.round)
        )
        .tuples()
        .all()
    )
    votes: dict[str, Counter[tuple[Any, ...]]] = defaultdict(Counter)
    judges = 0
    rows = session.execute(
        select(Judgment.id, Verdict.dimension, Verdict.kind, Verdict.chosen_candidate_id, Verdict.rejected_candidate_id)
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .where(Judgment.item_id == item.id, Judgment.round == item.round)
    ).tuples()
    seen: set[int] = set()
    for judgment_id, dim, kind, chosen, rejected in rows:
        seen.add(judgment_id)
        if kind == "preference" and chosen is not None and rejected is not None:
            votes[dim][(kind, position.get(chosen), position.get(rejected))] += 1
        elif kind == "tie":
            votes[dim][(kind,)] += 1
    judges = len(seen)
    expected: dict[str, dict[str, object]] = {}
    for dim in dims:
        top = votes[dim].most_common(1)
        if top and top[0][1] * 2 > judges:
            answer = top[0][0]
            expected[dim] = (
                {"kind": "preference", "chosen": answer[1], "rejected": answer[2]}
                if answer[0] == "preference"
                else {"kind": "tie"}
            )
        elif dim != OVERALL:
            expected[dim] = {"kind": "either"}
    return expected if OVERALL in expected else None


def _gold(session: Session, project: Project, ids: list[int]) -> BulkOut:
    dims = dimension_keys(project)
    changed, skipped = 0, []
    for item in session.scalars(select(Item).where(Item.id.in_(ids)).order_by(Item.id).with_for_update()):
        expected = None if item.is_gold else _majority_answers(session, item, dims)
        if expected is None:
            skipped.append(item.id)
            continue
        items.set_gold(session, project=project, item_id=item.id, expected=expected)
        changed += 1
    return BulkOut(action="gold", changed=changed, skipped=skipped)


def _flag(session: Session, ids: list[int], **values: bool) -> int:
    column, value = next(iter(values.items()))
    result = session.execute(update(Item).where(Item.id.in_(ids), getattr(Item, column).is_not(value)).values(**values))
    return int(getattr(result, "rowcount", 0) or 0)


def apply(session: Session, *, project: Project, action: str, item_ids: list[int], admin: User) -> BulkOut:
    """Apply ``action`` to the chosen items of ``project``."""
    ids = _project_ids(session, project, item_ids)
    if action == "gold":
        return _gold(session, project, ids)
    if action == "regenerate":
        job = generation.start_job(
            session, project=project, request=JobIn(selection="ids", item_ids=ids), user_id=admin.id
        )
        return BulkOut(action=action, changed=len(ids), job_id=job.id)
    if action in ("exclude", "include"):
        changed = _flag(session, ids, excluded_from_export=action == "exclude")
        return BulkOut(action=action, changed=changed)
    if action == "adjudicate":
        return BulkOut(action=action, changed=_flag(session, ids, review_requested=True))
    raise Invalid(f"Unknown action {action!r}")
