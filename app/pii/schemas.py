"""The personal-data gate's report and the admin's decision."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PiiChoice = Literal["mask", "drop", "accept"]
SCANNED_FIELDS = ("prompt", "candidate", "reason")


class PiiHitOut(BaseModel):
    """One match: its kind, where it is (``candidate_id`` for a candidate), and the match masked."""

    kind: str
    field: Literal["prompt", "candidate", "reason"]
    candidate_id: int | None = None
    match: str = Field(description="the match with all but its first and last two characters starred")


class PiiItemOut(BaseModel):
    item_id: int
    external_id: str | None
    hits: list[PiiHitOut]


class PiiReport(BaseModel):
    """What a scan of an export's prompts, candidates and reasons found."""

    items_scanned: int
    texts_scanned: int
    items_with_hits: int
    hits: dict[str, int] = Field(description="matches by kind")
    items: list[PiiItemOut] = Field(description="the first items with matches, in item order")
    truncated: bool = Field(description="more items have matches than are listed")


class PiiDecision(BaseModel):
    """What a snapshot does with personal data: one choice for every item with matches, and per-item overrides.
    Without a choice, a snapshot is refused while any item without an override has matches."""

    model_config = ConfigDict(extra="forbid")

    choice: PiiChoice | None = None
    overrides: dict[int, PiiChoice] = Field(default_factory=dict)

    def for_item(self, item_id: int) -> PiiChoice | None:
        return self.overrides.get(item_id, self.choice)

    def stored(self) -> dict[str, object]:
        """As a snapshot's ``filters["pii"]`` records it (JSON object keys are strings)."""
        return {"decision": self.choice, "overrides": {str(k): v for k, v in sorted(self.overrides.items())}}

    @classmethod
    def from_stored(cls, stored: object) -> PiiDecision:
        """The decision a snapshot's ``filters["pii"]`` records (none: no choice, no overrides)."""
        if not isinstance(stored, dict):
            return cls()
        return cls.model_validate({"choice": stored.get("decision"), "overrides": stored.get("overrides") or {}})
