"""Items: listing and one item with its candidates."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kit.errors import NotFound
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
