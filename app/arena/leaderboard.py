"""The leaderboard: per dimension, each model pair's win/tie/loss and win rate, each model's Bradley–Terry rating,
and whether the top pair is decided — computed from the votes (``repository``) by ``stats``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.arena import stats
from app.arena.repository import ArenaVotes, load_votes
from app.arena.schemas import (
    ArenaModelOut,
    ArenaOut,
    DecisionOut,
    DimensionBoardOut,
    LeaderboardOut,
    PairOut,
    RatingOut,
)
from app.arena.service import counts, identical_count, job_state
from app.kit.cache import Cache
from app.models import Judgment, Project, RegisteredModel

# Keyed by the arena (id, slug, creation time) and its judgments' count and newest change, so any new or edited
# judgment makes a new key; 64 boards, each a few kB. The bootstrap takes about a second per dimension.
Key = tuple[int, str, datetime, int, datetime | None, int, bool]
BOARDS: Cache[Key, LeaderboardOut] = Cache("arena.leaderboards", 64)


def models_of(session: Session, *, arena: Project) -> list[ArenaModelOut]:
    """The arena's models in its order (a model deleted from the registry shows as "model #id")."""
    ids = list(arena.arena.get("model_ids") or [])
    found = {m.id: m for m in session.scalars(select(RegisteredModel).where(RegisteredModel.id.in_(ids)))}
    return [
        ArenaModelOut(id=i, name=found[i].name, weights_sha256=found[i].weights_sha256)
        if i in found
        else ArenaModelOut(id=i, name=f"model #{i}", weights_sha256=None)
        for i in ids
    ]


def _dimension(dim: str, votes: ArenaVotes, names: list[str], rate: float | None) -> DimensionBoardOut:
    wins, ties = votes.wins[dim], votes.ties[dim]
    table = stats.pair_table(wins, ties)
    rated = stats.ratings(wins, ties)
    decision = None
    top = stats.top_pair(table, rated.rating) if rated else None
    if top is not None:
        # The top pair's share of the judgments gives its votes per hour.
        pair_rate = rate * top.votes / votes.judgments if rate and votes.judgments else None
        decided = stats.decision(top, votes_per_hour=pair_rate)
        decision = DecisionOut(
            a=names[top.a],
            b=names[top.b],
            decided=decided.decided,
            votes_needed=decided.votes_needed,
            hours_needed=decided.hours_needed,
        )
    return DimensionBoardOut(
        dimension=dim,
        votes=float(wins.sum() + ties.sum() / 2),
        pairs=[
            PairOut(
                a=names[p.a],
                b=names[p.b],
                wins=p.wins,
                ties=p.ties,
                losses=p.losses,
                win_rate=p.win_rate,
                low=p.low,
                high=p.high,
            )
            for p in table
        ],
        ratings=[
            RatingOut(model=names[j], rating=rated.rating[j], low=rated.low[j], high=rated.high[j])
            for j in sorted(range(len(names)), key=lambda j: -rated.rating[j])
        ]
        if rated
        else [],
        decision=decision,
    )


def leaderboard(session: Session, *, arena: Project, parent: Project, overall_only: bool = False) -> LeaderboardOut:
    """The arena's figures for every dimension, or only "overall" (its state needs no more); cached until a
    judgment is added or changed."""
    judged, newest = session.execute(
        select(func.count(), func.max(Judgment.updated_at)).where(Judgment.project_id == arena.id)
    ).one()
    key: Key = (arena.id, arena.slug, arena.created_at, int(judged), newest, identical_count(arena), overall_only)
    cached = BOARDS.get(key)
    if cached is not None:
        return cached
    models = models_of(session, arena=arena)
    names = [m.name for m in models]
    votes = load_votes(session, arena=arena, identical=identical_count(arena))
    rate = stats.votes_per_hour(votes.times)
    board = LeaderboardOut(
        arena=arena.slug,
        parent=parent.slug,
        models=models,
        judgments=votes.judgments,
        identical=identical_count(arena),
        votes_per_hour=rate,
        dimensions=[_dimension(d, votes, names, rate) for d in votes.dimensions if d == "overall" or not overall_only],
    )
    BOARDS.put(key, board)
    return board


def is_decided(board: LeaderboardOut) -> bool:
    """The overall top pair's interval excludes a tie."""
    overall = next((d for d in board.dimensions if d.dimension == "overall"), None)
    return bool(overall and overall.decision and overall.decision.decided)


def state_of(session: Session, *, arena: Project, parent: Project) -> str:
    """generating, failed, annotating or decided."""
    if not arena.arena.get("opened"):
        return "failed" if job_state(session, arena=arena) in ("failed", "cancelled") else "generating"
    board = leaderboard(session, arena=arena, parent=parent, overall_only=True)
    return "decided" if is_decided(board) else "annotating"


def overview(session: Session, *, arena: Project, parent: Project) -> ArenaOut:
    """An arena as its parent's list shows it."""
    items, judged = counts(session, arena=arena)
    return ArenaOut(
        id=arena.id,
        slug=arena.slug,
        name=arena.name,
        state=state_of(session, arena=arena, parent=parent),
        models=models_of(session, arena=arena),
        prompts=arena.arena.get("prompts") or {},
        items=items,
        identical=identical_count(arena),
        judgments=judged,
        job_id=arena.arena.get("job_id"),
    )
