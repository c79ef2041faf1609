"""Adjudication shapes for JSON, and the decision form."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.annotation.schemas import VerdictIn
from app.kit.forms import FormModel


class QueueEntryOut(BaseModel):
    item_id: int
    external_id: str | None
    prompt: Any
    judgments: int
    margin: float
    reasons: list[str]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdicts: dict[str, VerdictIn]
    reason: str = Field(min_length=1, max_length=10_000)


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    item_id: int
    round: int
    decided_by_id: int | None
    verdicts: dict[str, Any]
    reason: str
    created_at: datetime


class DecisionForm(FormModel):
    """The decision: one field per dimension, named by its key ("tie", "na" or "<best>><worst>"), and a reason."""

    model_config = ConfigDict(extra="allow")
    reason: str = ""


class DecidedOut(BaseModel):
    """An item's current decision as the Decided list shows it; ``verdicts`` by dimension in candidate letters by
    canonical position ("A>B" = A best, B worst), "tie" or "na"."""

    decision_id: int
    item_id: int
    external_id: str | None
    prompt: Any
    round: int
    decided_by: str | None
    decided_at: datetime
    reason: str
    verdicts: dict[str, str]
    overall: str
    differs: list[str]


class DecidedPageOut(BaseModel):
    entries: list[DecidedOut]
    next_before: int | None = Field(description="pass as ``before`` for the next (older) page; null: no more")
