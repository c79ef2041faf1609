"""Items: listing and one item with its candidates."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation.dimensions import dimension_keys
from app.annotation.tallies import shift_gold_tallies
from app.kit.errors import Invalid, NotFound
from app.models import Candidate, Item, Project


def list_items(
    session: Session, *, project: Project, after_id: int = 0, limit: int = 50, status: str | None = None
) -> list[tuple[Item, int]]:
    """A page of items (keyset by id) with their current-round candidate counts."""
    count = (
        select(func.count())
        .where(Candidate.item_id == Item.id, Candidate.round == Item.round)
        .correlate(Item)
        .scalar_subquery()
    )
    query = select(Item, count).where(Item.project_id == project.id, Item.id > after_id)
    if status:
        query = query.where(Item.status == status)
    return [(i, int(n)) for i, n in session.execute(query.order_by(Item.id).limit(limit)).tuples()]


def get_item(session: Session, *, project: Project, item_id: int) -> tuple[Item, list[Candidate]]:
    item = session.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise NotFound("No such item")
    candidates = list(
        session.scalars(
            select(Candidate).where(Candidate.item_id == item.id).order_by(Candidate.round.desc(), Candidate.position)
        )
    )
    return item, candidates


GOLD_KINDS = ("preference", "tie", "either")


def set_gold(
    session: Session, *, project: Project, item_id: int, expected: dict[str, dict[str, object]] | None
) -> Item:
    """Make an item gold with its expected judgment (canonical positions; "either" accepts any answer),
    or an ordinary item again with ``None``. Gold judgments are left out of agreement figures and export."""
    item, _ = get_item(session, project=project, item_id=item_id)
    was_gold = item.is_gold
    if expected is None:
        item.is_gold, item.gold = False, None
        session.flush()
        if was_gold:
            shift_gold_tallies(session, item=item, gold=False)
        return item
    dims = dimension_keys(project)
    unknown = [d for d in expected if d not in dims]
    if unknown:
        raise Invalid(f"Unknown dimensions: {', '.join(unknown)}")
    if "overall" not in expected:
        raise Invalid("The expected overall answer is needed")
    clean: dict[str, dict[str, object]] = {}
    for dim, answer in expected.items():
        kind = answer.get("kind")
        if kind not in GOLD_KINDS:
            raise Invalid(f"{dim}: kind must be preference, tie or either")
        if kind == "preference":
            chosen, rejected = answer.get("chosen"), answer.get("rejected")
            if (
                not (isinstance(chosen, int) and isinstance(rejected, int))
                or chosen == rejected
                or not (0 <= chosen < project.k and 0 <= rejected < project.k)
            ):
                raise Invalid(f"{dim}: chosen and rejected must be two different positions 0–{project.k - 1}")
            clean[dim] = {"kind": kind, "chosen": chosen, "rejected": rejected}
        else:
            clean[dim] = {"kind": kind}
    item.is_gold, item.gold = True, clean
    session.flush()
    if not was_gold:
        shift_gold_tallies(session, item=item, gold=True)
    return item
