"""Item shapes for JSON, and the gold form."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.items.importer import MAX_DUPLICATES_LISTED
from app.kit.forms import FormModel


class CandidateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    round: int
    position: int
    text: str
    model: str | None
    params: dict[str, Any]
    seed: int | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    external_id: str | None
    prompt: Any
    meta: dict[str, Any]
    status: str
    round: int
    judgment_count: int
    is_gold: bool = False
    gold: dict[str, Any] | None = None
    candidate_count: int = 0
    created_at: datetime
    import_batch_id: int | None = None


class ItemDetailOut(ItemOut):
    candidates: list[CandidateOut]


class ImportOut(BaseModel):
    lines: int
    created: int
    ready: int
    pending: int
    duplicates: list[dict[str, Any]] = Field(
        description=f"The first {MAX_DUPLICATES_LISTED} duplicate lines skipped, each with its line and reason"
    )
    duplicate_count: int = Field(description="Every duplicate line skipped")
    batch_id: int | None = Field(
        default=None, description="The import batch the items carry (the explorer's `batch` filter)"
    )


class ImportBatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    filename: str = Field(description="The file's name as uploaded")
    created_by_id: int | None
    created_at: datetime
    added: int = Field(description="Items added")
    duplicates: int = Field(description="Lines skipped as duplicates")


class GoldForm(FormModel):
    """The expected answers of a gold item, one ``gold_<dimension>`` field each (read with ``fields()``)."""

    model_config = ConfigDict(extra="allow")
