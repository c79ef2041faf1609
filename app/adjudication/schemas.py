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
