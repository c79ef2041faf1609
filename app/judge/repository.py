"""Reading a project's suggestions: which judge's verdict counts where several judges answered."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Item, Project, Suggestion


def judge_name(model: str, base_url: str) -> str:
    """How a judge is named on its suggestions: its model and server."""
    return f"{model}@{base_url}"


def judge_names(project: Project) -> list[str]:
    """The project's judges in the order its settings list them; the first is the primary judge."""
    judges: list[dict[str, Any]] = (project.judge or {}).get("judges", [])
    return [judge_name(str(j.get("model", "")), str(j.get("base_url", ""))) for j in judges]


def primary_suggestions(
    session: Session, *, project: Project, item_ids: Iterable[int]
) -> dict[tuple[int, str], Suggestion]:
    """(item id, dimension) → the suggestion that counts on the item's current candidate round: the primary
    judge's, else that of the judge listed earliest, else (a judge no longer listed) the oldest stored."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rank = {name: n for n, name in enumerate(judge_names(project))}
    found: dict[tuple[int, str], Suggestion] = {}
    for start in range(0, len(ids), 500):
        rows = session.scalars(
            select(Suggestion)
            .join(Item, Item.id == Suggestion.item_id)
            .where(Suggestion.item_id.in_(ids[start : start + 500]), Suggestion.round == Item.round)
            .order_by(Suggestion.id)
        )
        for suggestion in rows:
            key = (suggestion.item_id, suggestion.dimension)
            held = found.get(key)
            if held is None or rank.get(suggestion.judge, len(rank)) < rank.get(held.judge, len(rank)):
                found[key] = suggestion
    return found
