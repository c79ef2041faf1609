"""Shapes of the arena: creating one, listing them, the leaderboard."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kit.schemas import RowId

MAX_PROMPTS = 5000
MAX_PROMPTS_TEXT = 5_000_000  # characters of an imported prompt list


class ArenaIn(BaseModel):
    """A new arena: 2–4 registered models with endpoints, and its prompts — a ready snapshot's test split or a
    pasted list (JSONL with a "prompt" per line, or one plain-text prompt per line)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    model_ids: list[RowId] = Field(min_length=2, max_length=4)
    overlap: int = Field(default=3, ge=1, le=20, description="annotators per prompt")
    snapshot_id: RowId | None = Field(default=None, description="take the prompts of this snapshot's test split")
    prompts: str | None = Field(default=None, max_length=MAX_PROMPTS_TEXT, description="JSONL or plain lines")

    @model_validator(mode="after")
    def _one_source(self) -> ArenaIn:
        if (self.snapshot_id is None) == (not (self.prompts or "").strip()):
            raise ValueError("give either snapshot_id or prompts, not both")
        if len(set(self.model_ids)) != len(self.model_ids):
            raise ValueError("each model may take part once")
        return self


class ArenaModelOut(BaseModel):
    id: int
    name: str
    weights_sha256: str | None


class ArenaOut(BaseModel):
    """An arena as its parent's list shows it. ``state``: generating, annotating, decided (the top pair's overall
    interval excludes a tie) or failed (its generation job failed)."""

    id: int
    slug: str
    name: str
    state: str
    models: list[ArenaModelOut]
    prompts: dict[str, Any]
    items: int
    identical: int = Field(description="prompts whose answers were all identical: ties, not asked")
    judgments: int
    job_id: int | None


class PairOut(BaseModel):
    a: str
    b: str
    wins: float
    ties: float
    losses: float
    win_rate: float | None = Field(description="of a over b, ties counting half")
    low: float | None
    high: float | None


class RatingOut(BaseModel):
    model: str
    rating: float = Field(description="Bradley–Terry log-strength on the Elo scale (1000 = mean, 400 = 10:1 odds)")
    low: float
    high: float


class DecisionOut(BaseModel):
    a: str
    b: str
    decided: bool
    votes_needed: int | None
    hours_needed: float | None


class DimensionBoardOut(BaseModel):
    dimension: str
    votes: float
    pairs: list[PairOut]
    ratings: list[RatingOut]
    decision: DecisionOut | None


class LeaderboardOut(BaseModel):
    arena: str
    parent: str
    models: list[ArenaModelOut]
    judgments: int
    identical: int
    votes_per_hour: float | None
    dimensions: list[DimensionBoardOut]
