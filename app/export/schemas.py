from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.kit.schemas import Schema
from app.pii.schemas import PiiChoice

# In the order the rules apply: the first rule that drops a pair counts it.
DROP_REASONS = (
    "min_judgments",
    "problematic",
    "split",
    "min_votes",
    "no_majority",
    "tie",
    "margin",
    "share",
    "min_confidence",
    "min_strength",
    "veto",
    "identical",
)


class ExportFilter(BaseModel):
    """Which pairs an export keeps. The same fields on the page, the command line and the API."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["standard", "conversational"] = Field(
        "standard", description="standard: prompt/chosen/rejected strings; conversational: lists of messages"
    )
    dimension: str = Field("overall", description="'overall' or one of the project's dimension keys")
    pairs: Literal["implied", "best_worst"] = Field(
        "implied", description="implied: best ≻ each other and each other ≻ worst; best_worst: best ≻ worst only"
    )
    min_judgments: int = Field(1, ge=1, le=100, description="judgments an item needs (after exclusions)")
    min_votes: int = Field(
        1, ge=1, le=100, description="votes the pair itself needs (ties included; an adjudicated pair needs none)"
    )
    label: Literal["majority", "model"] = Field(
        "majority",
        description="majority: the direction with more votes; model: the consensus model's more probable direction "
        "(annotator reliability and display position taken into account)",
    )
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="the model's posterior of the exported direction must reach this"
    )
    min_strength: float | None = Field(
        None, ge=-3.0, le=3.0, description="mean signed strength (−3…3) of the votes that carry one must reach this"
    )
    min_share: float = Field(0.0, ge=0.0, le=1.0, description="winning direction's share of the votes, ties included")
    min_margin: int = Field(1, ge=1, le=100, description="votes for the winning direction minus votes against")
    drop_ties: bool = Field(True, description="drop pairs that as many or more annotators called a tie")
    veto: list[str] = Field(default_factory=list, description="dimensions on which chosen must not lose")
    exclude_annotators: list[str] = Field(
        default_factory=list,
        description="annotators whose votes are ignored, by pseudonym (as in meta.annotators); "
        "an admin may also give usernames or user ids",
    )
    min_annotator_kappa: float | None = Field(
        None, ge=-1.0, le=1.0, description="ignore annotators whose mean Cohen's κ with their peers is lower"
    )
    min_gold_accuracy: float | None = Field(
        None, ge=0.0, le=1.0, description="ignore annotators whose gold accuracy is lower"
    )
    source: Literal["human", "judge", "both", "arena"] = Field(
        "human",
        description="human: people's votes; judge: the primary judge's suggestions; both: people's label where "
        "their votes keep the pair, else the judge's; arena: the votes of an arena (evaluation) project, which "
        "must be asked for this way (and only there)",
    )
    min_judge_confidence: float = Field(
        0.0, ge=0.0, le=1.0, description="judge labels: the suggestion's confidence must reach this (none: only 0)"
    )
    min_judge_kappa: float = Field(
        0.6, ge=-1.0, le=1.0, description="judge labels only on a dimension where judge-vs-human κ reaches this"
    )
    adjudicated: bool = Field(True, description="adjudication decisions override the votes")
    drop_problematic: bool = Field(True, description="drop items flagged 'problematic prompt'")
    rounds: list[int] = Field(
        default_factory=list,
        max_length=100,
        description="only items whose current candidate round is one of these (0: the first candidates); "
        "empty: every round",
    )
    split: Literal["all", "train", "test"] = Field("all", description="deterministic split by a hash of the item id")
    test_share: float = Field(0.1, ge=0.0, le=0.9, description="share of items in the test split")

    @field_validator("veto", "exclude_annotators", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        """Accept "a,b" as well as repeated parameters."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [part.strip() for v in value for part in str(v).split(",") if part.strip()]
        return value

    @field_validator("rounds", mode="before")
    @classmethod
    def _round_list(cls, value: Any) -> Any:
        """Accept "0,2" as well as repeated parameters."""
        if isinstance(value, (str, int)):
            value = [value]
        if isinstance(value, list):
            return [part.strip() for v in value for part in str(v).split(",") if part.strip()]
        return value

    @field_validator("rounds")
    @classmethod
    def _rounds_in_range(cls, value: list[int]) -> list[int]:
        if any(r < 0 or r > 1_000_000 for r in value):
            raise ValueError("a round is a number from 0")
        return sorted(set(value))


JUDGE_FIELDS = {"source", "min_judge_confidence", "min_judge_kappa"}  # left out of a human-only filter's card


class PreviewOut(BaseModel):
    """What a filter keeps: items and pairs looked at, and how many pairs each rule dropped."""

    items: int
    judged_items: int
    candidate_pairs: int
    dropped: dict[str, int]
    kept: int
    adjudicated: int
    by_split: dict[str, int]
    excluded_annotators: list[str]  # pseudonyms, whoever asks


class PartsWanted(BaseModel):
    """The files a snapshot writes beside the main one."""

    model_config = ConfigDict(extra="forbid")

    ties: bool = Field(False, description="also a file of the pairs whose consensus is a tie (meta.tie = true)")
    per_dimension: bool = Field(False, description="also one file for each other dimension, with the same filter")


class SnapshotCreate(PartsWanted):
    name: str = Field("", max_length=200)
    filters: ExportFilter = Field(default_factory=ExportFilter)
    pii: PiiChoice | None = Field(
        None,
        description="personal data in the export: mask (placeholders such as [EMAIL]), drop (leave those items' "
        "pairs out) or accept (as is); without it a snapshot with matches is refused (422)",
    )
    pii_overrides: dict[int, PiiChoice] = Field(
        default_factory=dict, description="per item id: mask, drop or accept, over ``pii``"
    )


class SnapshotPart(BaseModel):
    """A file of a snapshot beside the main one: ``GET /api/v1/snapshots/{id}/parts/{name}.jsonl``."""

    name: str
    kind: Literal["ties", "dimension"]
    dimension: str
    rows: int = 0
    bytes: int = 0
    sha256: str | None = None


class SnapshotOut(Schema):
    id: int
    project: str
    name: str
    format: str
    state: str
    filters: dict[str, Any]
    row_count: int
    size_bytes: int
    sha256: str | None
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    parts: list[SnapshotPart] = Field(default_factory=list)
    rounds: list[int] = Field(default_factory=list, description="the candidate rounds its pairs came from")


class SnapshotCard(SnapshotOut):
    card: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its keyed hash is stored")
