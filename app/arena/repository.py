"""The arena's votes read from its judgments: per dimension, per item, model against model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.arena.stats import Votes
from app.export.pairs import FIRST, SECOND, TIE, pairs_of, ranked_of
from app.models import Candidate, Item, Judgment, Project, Verdict

MODE = "implied"  # best ≻ each other, each other ≻ worst; a ranking gives every pair


@dataclass
class ArenaVotes:
    """``wins``/``ties`` per dimension, shape (items, models, models) in the order of ``arena["model_ids"]``;
    the judgments' times (seconds since the epoch) for the vote rate."""

    dimensions: list[str]
    wins: dict[str, Votes] = field(default_factory=dict)
    ties: dict[str, Votes] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    judgments: int = 0


def _positions(session: Session, arena: Project, model_index: dict[int, int]) -> dict[int, dict[int, tuple[int, int]]]:
    """item id → candidate id → (canonical position, model index), current round only."""
    rows = session.execute(
        select(Candidate.item_id, Candidate.id, Candidate.position, Candidate.model_id)
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == arena.id)
    ).tuples()
    out: dict[int, dict[int, tuple[int, int]]] = {}
    for item_id, cid, position, model_id in rows:
        if model_id in model_index:
            out.setdefault(item_id, {})[cid] = (position, model_index[model_id])
    return out


def load_votes(session: Session, *, arena: Project, identical: int) -> ArenaVotes:
    """Every vote of the arena; ``identical`` items whose answers were all the same count as ``overlap`` ties on
    every pair (as many votes as an asked item gets)."""
    model_ids = list(arena.arena.get("model_ids") or [])
    model_index = {mid: j for j, mid in enumerate(model_ids)}
    m, k = len(model_ids), arena.k
    dims = ["overall", *arena.dimension_keys]
    positions = _positions(session, arena, model_index)
    item_row = {item_id: n for n, item_id in enumerate(sorted(positions))}
    n = len(item_row) + identical
    votes = ArenaVotes(dimensions=dims)
    for d in dims:
        votes.wins[d], votes.ties[d] = np.zeros((n, m, m)), np.zeros((n, m, m))
        for row in range(len(item_row), n):
            votes.ties[d][row] = arena.overlap * (1 - np.eye(m))
    rows = session.execute(
        select(
            Judgment.id,
            Judgment.item_id,
            Judgment.created_at,
            Verdict.dimension,
            Verdict.kind,
            Verdict.chosen_candidate_id,
            Verdict.rejected_candidate_id,
            Verdict.ranking,
        )
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .where(Judgment.project_id == arena.id)
    ).tuples()
    seen: dict[int, datetime] = {}
    for jid, item_id, created, dim, kind, chosen, rejected, ranking in rows:
        seen[jid] = created
        where = positions.get(item_id)
        if where is None or dim not in votes.wins or item_id not in item_row:
            continue
        pos = {cid: p for cid, (p, _) in where.items()}
        model_at = dict(where.values())
        ranked = ranked_of(ranking, pos) if kind == "ranking" else None
        implied = pairs_of(
            kind, pos.get(chosen) if chosen else None, pos.get(rejected) if rejected else None, ranked, k, MODE
        )
        row = item_row[item_id]
        for (i, j), label in implied.items():
            a, b = model_at[i], model_at[j]
            if label == FIRST:
                votes.wins[dim][row, a, b] += 1
            elif label == SECOND:
                votes.wins[dim][row, b, a] += 1
            elif label == TIE:
                votes.ties[dim][row, a, b] += 1
                votes.ties[dim][row, b, a] += 1
    votes.times = sorted(t.timestamp() for t in seen.values())
    votes.judgments = len(seen)
    return votes
