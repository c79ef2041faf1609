"""The explorer's filters (one model for the page's query string and the JSON API), its rows and bulk actions."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.kit.forms import FormModel
from app.kit.schemas import MAX_ROW_ID, RowId

SORTS = ("id", "newest", "judgments", "margin")
BULK_ACTIONS = ("gold", "adjudicate", "regenerate", "exclude", "include")


class Filters(BaseModel):
    """What to find. Every field is optional; blank fields of the page's form count as not given."""

    model_config = ConfigDict(extra="ignore")

    q: str | None = Field(default=None, max_length=200, description="text in the prompt or any candidate answer")
    match: Literal["words", "substring"] = Field(
        default="words", description="words: every word appears (full-text); substring: the text appears as typed"
    )
    status: Literal["pending", "ready"] | None = None
    gold: bool | None = None
    flag: Literal["any", "all_bad", "problematic"] | None = Field(
        default=None, description="judged with this flag in the current round"
    )
    skipped: bool | None = Field(default=None, description="skipped by someone in the current round")
    skip_reason: str | None = Field(default=None, max_length=200, description="text in a skip reason")
    annotator: str | None = Field(default=None, max_length=100, description="judged by this user (current round)")
    model: str | None = Field(default=None, max_length=200, description="a current candidate from this model")
    round: int | None = Field(default=None, ge=0, le=10_000, description="the item's current candidate round")
    batch: int | None = Field(
        default=None, ge=1, le=MAX_ROW_ID, description="added by this import batch (`GET .../import-batches`)"
    )
    split: bool | None = Field(
        default=None, description="two or more judgments whose overall vote leads by less than the adjudication margin"
    )
    margin_max: float | None = Field(
        default=None, ge=0, le=1, description="overall vote margin ((top − runner-up) / voters) at most this"
    )
    excluded: bool | None = Field(default=None, description="left out of exports")
    review: bool | None = Field(default=None, description="sent to adjudication from the explorer")
    sort: Literal["id", "newest", "judgments", "margin"] = "id"
    after: str | None = Field(
        default=None, max_length=60, pattern=r"^(-?[0-9.e+-]+:)?[0-9]+$", description="the previous page's `next`"
    )

    @field_validator("after")
    @classmethod
    def _cursor_in_range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        key, _, last = value.rpartition(":")
        try:
            number = float(key) if key else 0.0
        except ValueError as exc:
            raise ValueError("not a cursor from this list") from exc
        if int(last) > MAX_ROW_ID or not math.isfinite(number) or abs(number) > MAX_ROW_ID:
            raise ValueError("not a cursor from this list")
        return value


class Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    external_id: str | None
    prompt: Any
    status: str
    round: int
    judgment_count: int
    is_gold: bool
    excluded_from_export: bool
    review_requested: bool
    created_at: datetime
    import_batch_id: int | None = None
    candidate_count: int = 0
    margin: float | None = Field(default=None, description="overall vote margin of the current round")
    models: list[str] = Field(default_factory=list)


class Page(BaseModel):
    items: list[Row]
    next: str | None = Field(description="pass as `after` for the next page; null on the last page")


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["gold", "adjudicate", "regenerate", "exclude", "include"]
    item_ids: list[RowId] = Field(min_length=1, max_length=10_000)


class BulkOut(BaseModel):
    action: str
    changed: int = Field(description="items the action changed")
    skipped: list[int] = Field(default_factory=list, description="chosen items the action could not apply to")
    job_id: int | None = Field(default=None, description="the generation job (regenerate)")


class BulkForm(FormModel):
    action: str = ""
    item: list[str] = Field(default_factory=list)
