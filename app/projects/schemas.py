"""Project shapes for JSON and forms."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.i18n import CATALOG_LOCALES
from app.kit.forms import FormModel
from app.kit.schemas import StoredText
from app.models import DEFAULT_DIMENSIONS

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_DIMENSIONS = 10
# How a judgment orders k ≥ 3 candidates: best and worst, or every candidate (ties allowed). Ignored at k = 2.
RankingMode = Literal["best_worst", "rank"]
SuggestionMode = Literal["hidden", "shown", "after"]
QueueOrder = Literal["fullest_first", "uncertain_first"]


# The edit form shows names and labels in inputs (a browser drops their line breaks) and longer text in
# textareas (a browser sends CRLF): the API stores them in the same form, so an unchanged form saves the same bytes.
def one_line(value: str) -> str:
    value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def lf_line_breaks(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


OneLine = Annotated[str, AfterValidator(one_line)]
MultiLine = Annotated[str, AfterValidator(lf_line_breaks)]


class DimensionText(BaseModel):
    """A dimension's label and description in one UI language (empty: the dimension's own text)."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="", max_length=100)
    description: MultiLine = Field(default="", max_length=2000)

    @field_validator("label")
    @classmethod
    def _label(cls, label: str) -> str:
        return one_line(label) if label.strip() else ""


class Dimension(BaseModel):
    """A dimension: its own label and description are the project's default text; ``labels`` gives them in other
    UI languages, by catalog locale (``{"zh_Hans": {"label": ..., "description": ...}}``). An optional dimension
    (``required: false``) may be left unanswered: its verdict is then missing, as n.a. is."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=64)
    label: OneLine = Field(min_length=1, max_length=100)
    description: MultiLine = Field(default="", max_length=2000)
    required: bool = True
    labels: dict[str, DimensionText] = Field(default_factory=dict)

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        if not KEY.match(key) or key == "overall":
            raise ValueError("a dimension key is lowercase letters, digits and _ (not 'overall')")
        return key

    @field_validator("labels")
    @classmethod
    def _locales(cls, labels: dict[str, DimensionText]) -> dict[str, DimensionText]:
        known = sorted(set(CATALOG_LOCALES.values()))
        unknown = [locale for locale in labels if locale not in known]
        if unknown:
            raise ValueError(f"unknown language {unknown[0]!r}; one of: {', '.join(known)}")
        return {locale: text for locale, text in labels.items() if text.label or text.description}

    def stored(self) -> dict[str, Any]:
        """As the project stores it: ``required`` only when false, ``labels`` only when some text is given (a
        project without either stores the same dicts as before they existed)."""
        out: dict[str, Any] = {"key": self.key, "label": self.label, "description": self.description}
        if not self.required:
            out["required"] = False
        if self.labels:
            out["labels"] = {locale: text.model_dump() for locale, text in sorted(self.labels.items())}
        return out


def unique_dimensions(dims: list[Dimension]) -> list[Dimension]:
    keys = [d.key for d in dims]
    if len(keys) != len(set(keys)):
        raise ValueError("dimension keys must be unique")
    return dims


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: OneLine = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, max_length=64)
    guidelines: MultiLine = Field(default="", max_length=100_000)
    dimensions: list[Dimension] = Field(
        default_factory=lambda: [Dimension(**d) for d in DEFAULT_DIMENSIONS], min_length=1, max_length=MAX_DIMENSIONS
    )
    k: int = Field(default=2, ge=2, le=4)
    overlap: int = Field(default=3, ge=1, le=50)
    lease_minutes: int = Field(default=30, ge=1, le=24 * 60)
    gold_share: float = Field(default=0.05, ge=0, le=1)
    gold_min_accuracy: float = Field(default=0.7, ge=0, le=1)
    ranking_mode: RankingMode = "best_worst"
    strength: bool = False
    cohen_min_items: int = Field(default=20, ge=2, le=100_000)
    suggestions: SuggestionMode = "hidden"
    queue_order: QueueOrder = "fullest_first"
    overlap_min: int | None = Field(
        default=None,
        ge=0,
        le=50,
        description="adaptive overlap: judgments every item gets (r_min), overlap being r_max; None or 0: off",
    )
    adaptive_margin: float = Field(
        default=0.3, ge=0, le=1, description="an item is reopened while its vote margin (share) is below this"
    )

    @model_validator(mode="after")
    def _overlap_range(self) -> ProjectIn:
        self.overlap_min = self.overlap_min or None
        if self.overlap_min is not None and self.overlap_min > self.overlap:
            raise ValueError("the least overlap (r_min) cannot be above the overlap (r_max)")
        return self

    @field_validator("slug")
    @classmethod
    def _slug(cls, slug: str | None) -> str | None:
        if slug and not SLUG.match(slug):
            raise ValueError("a slug is lowercase letters, digits and -")
        return slug or None

    @field_validator("dimensions")
    @classmethod
    def _unique(cls, dims: list[Dimension]) -> list[Dimension]:
        return unique_dimensions(dims)


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: OneLine | None = Field(default=None, min_length=1, max_length=200)
    guidelines: MultiLine | None = Field(default=None, max_length=100_000)
    dimensions: list[Dimension] | None = Field(default=None, min_length=1, max_length=MAX_DIMENSIONS)
    k: int | None = Field(default=None, ge=2, le=4)
    overlap: int | None = Field(default=None, ge=1, le=50)
    lease_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    gold_share: float | None = Field(default=None, ge=0, le=1)
    gold_min_accuracy: float | None = Field(default=None, ge=0, le=1)
    ranking_mode: RankingMode | None = None
    strength: bool | None = None
    cohen_min_items: int | None = Field(default=None, ge=2, le=100_000)
    suggestions: SuggestionMode | None = None
    queue_order: QueueOrder | None = None
    overlap_min: int | None = Field(default=None, ge=0, le=50, description="0 turns adaptive overlap off")
    adaptive_margin: float | None = Field(default=None, ge=0, le=1)

    @field_validator("dimensions")
    @classmethod
    def _unique(cls, dims: list[Dimension] | None) -> list[Dimension] | None:
        return unique_dimensions(dims) if dims is not None else None


class DimensionTextOut(BaseModel):
    label: str = ""
    description: str = ""


class DimensionOut(BaseModel):
    """A dimension as stored (read back without the input rules, which also rewrite)."""

    key: str
    label: str
    description: str = ""
    required: bool = True
    labels: dict[str, DimensionTextOut] = Field(default_factory=dict)


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    slug: str
    name: str
    guidelines: str
    dimensions: list[DimensionOut]
    k: int
    overlap: int
    lease_minutes: int
    gold_share: float
    gold_min_accuracy: float
    ranking_mode: RankingMode
    strength: bool
    cohen_min_items: int
    suggestions: SuggestionMode
    queue_order: QueueOrder
    overlap_min: int | None
    adaptive_margin: float
    created_at: datetime


class CountsOut(BaseModel):
    items: int
    with_candidates: int
    fully_judged: int
    judgments: int
    members: int


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: StoredText = Field(min_length=1, max_length=64)


class MemberOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    role: str
    judgments: int


# --- the HTML forms (a field not sent reads as "", as the pages always read them) ------------------------------


class ProjectForm(FormModel):
    """The project form: its fields as typed, checked by ``ProjectIn`` / ``ProjectPatch`` once converted. The
    dimension rows are posted as ``dimension-<n>-key|label|description|required`` and, per other UI language,
    ``dimension-<n>-label@<locale>|description@<locale>`` (read with ``fields()``)."""

    model_config = ConfigDict(extra="allow")
    name: str = ""
    slug: str = ""
    guidelines: str = ""
    k: str = ""
    overlap: str = ""
    lease_minutes: str = ""
    gold_share: str = ""  # percentages
    gold_min_accuracy: str = ""
    ranking_mode: str = ""
    strength: str = ""  # "1": ask how much better, "0": do not; anything else keeps the setting
    cohen_min_items: str = ""
    suggestions: str = ""
    queue_order: str = ""
    overlap_min: str = ""  # blank or 0: every item gets the overlap
    adaptive_margin: str = ""  # a percentage


class MemberForm(FormModel):
    username: str = ""


class PauseForm(FormModel):
    paused: str = ""  # "1": pause, anything else: resume
