"""Shapes of judgments in and out (JSON API), shared with the HTML form parser."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kit.schemas import MAX_ROW_ID, RowId, Schema, StoredText


class VerdictIn(BaseModel):
    """One dimension: ``preference`` names the chosen (best) and rejected (worst) candidate ids."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["preference", "tie", "na"]
    chosen: int | None = None
    rejected: int | None = None

    @model_validator(mode="after")
    def _candidates_match_kind(self) -> VerdictIn:
        if self.kind == "preference":
            if self.chosen is None or self.rejected is None:
                raise ValueError("a preference needs both 'chosen' and 'rejected'")
            if self.chosen == self.rejected:
                raise ValueError("'chosen' and 'rejected' must be different candidates")
        elif self.chosen is not None or self.rejected is not None:
            raise ValueError(f"a '{self.kind}' verdict takes no candidates")
        return self


class JudgmentIn(BaseModel):
    """A judgment: verdicts for "overall" and every project dimension, in canonical candidate ids."""

    model_config = ConfigDict(extra="forbid")
    verdicts: dict[StoredText, VerdictIn]
    reason: StoredText = Field(default="", max_length=10_000)
    all_bad: bool = False
    problematic: bool = False
    seconds: float | None = Field(default=None, ge=0, le=86_400)


class SubmitIn(JudgmentIn):
    assignment_id: RowId
    submit_key: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class EditIn(JudgmentIn):
    version: int = Field(ge=1, le=MAX_ROW_ID)


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StoredText = Field(default="", max_length=2_000)


class CandidateOut(Schema):
    id: int
    label: str  # the letter shown (A, B, ...) in this annotator's display order
    text: str
    model: str | None
    finish_reason: str | None


class DimensionOut(BaseModel):
    key: str
    label: str
    description: str = ""


class ProgressOut(BaseModel):
    judged_by_me: int
    my_target: int
    items_done: int
    items_total: int


class AssignmentOut(BaseModel):
    assignment_id: int
    item_id: int
    external_id: str | None
    prompt: Any
    candidates: list[CandidateOut]
    dimensions: list[DimensionOut]
    lease_expires_at: datetime
    progress: ProgressOut


class NextOut(BaseModel):
    assignment: AssignmentOut | None
    progress: ProgressOut
    detail: str | None = None


class VerdictOut(Schema):
    dimension: str
    kind: str
    chosen_candidate_id: int | None
    rejected_candidate_id: int | None


class JudgmentOut(BaseModel):
    id: int
    item_id: int
    assignment_id: int
    annotator_id: int
    verdicts: dict[str, VerdictIn]
    reason: str
    all_bad: bool
    problematic: bool
    seconds: float | None
    version: int
    created_at: datetime
    updated_at: datetime
