"""Shapes of judgments in and out: the JSON API's, and the annotation page's forms that read into them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.annotation.dimensions import LETTERS, dimension_keys, letters_of, required_keys
from app.annotation.ranking import order_text, parse_order, ranking_letters
from app.kit.errors import Invalid
from app.kit.forms import FormModel
from app.kit.schemas import MAX_ROW_ID, RowId, Schema, StoredText
from app.models import Project


class VerdictIn(BaseModel):
    """One dimension, in canonical candidate ids: ``preference`` names the chosen (best) and rejected (worst)
    candidate, with k = 2 optionally ``strength`` (1 slightly, 2 better, 3 much better); ``ranking`` orders every
    candidate in tiers, best first (a tier of several is a tie), with ``much`` the gaps marked "much better" (0: the
    gap after the first tier); ``tie`` and ``na`` take nothing else."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["preference", "tie", "na", "ranking"]
    chosen: int | None = None
    rejected: int | None = None
    strength: int | None = Field(default=None, ge=1, le=3)
    ranking: list[list[int]] | None = Field(default=None, max_length=4)
    much: list[int] | None = Field(default=None, max_length=3)

    @model_validator(mode="after")
    def _candidates_match_kind(self) -> VerdictIn:
        if self.kind == "preference":
            if self.chosen is None or self.rejected is None:
                raise ValueError("a preference needs both 'chosen' and 'rejected'")
            if self.chosen == self.rejected:
                raise ValueError("'chosen' and 'rejected' must be different candidates")
        elif self.chosen is not None or self.rejected is not None:
            raise ValueError(f"a '{self.kind}' verdict takes no candidates")
        if self.strength is not None and self.kind != "preference":
            raise ValueError("only a preference takes a 'strength'")
        if self.kind == "ranking":
            self._check_ranking()
        elif self.ranking is not None or self.much is not None:
            raise ValueError("only a ranking takes 'ranking' and 'much'")
        return self

    def _check_ranking(self) -> None:
        tiers = self.ranking or []
        ids = [cid for tier in tiers for cid in tier]
        if len(tiers) < 1 or any(not tier for tier in tiers):
            raise ValueError("a ranking is a list of tiers of candidate ids, none of them empty")
        if len(set(ids)) != len(ids):
            raise ValueError("a ranking names each candidate once")
        much = self.much or []
        if any(not 0 <= gap < len(tiers) - 1 for gap in much) or len(set(much)) != len(much):
            raise ValueError("'much' lists gaps between tiers: 0 for the gap after the first tier, each once")

    def stored_ranking(self) -> dict[str, Any] | None:
        """The ranking as the verdict table keeps it (None for other kinds)."""
        if self.kind != "ranking":
            return None
        return {"tiers": self.ranking, "much": sorted(self.much or [])}


class JudgmentIn(BaseModel):
    """A judgment: verdicts for "overall" and every required project dimension (optional ones may be left out),
    in canonical candidate ids."""

    model_config = ConfigDict(extra="forbid")
    verdicts: dict[StoredText, VerdictIn]
    reason: StoredText = Field(default="", max_length=10_000)
    all_bad: bool = False
    problematic: bool = False
    seconds: float | None = Field(default=None, ge=0, le=86_400)
    # Of those, the time the annotator was active (idle stretches and hidden tabs left out); optional.
    active_seconds: float | None = Field(default=None, ge=0, le=86_400)


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
    label: str  # in the request's language, else the project's own text
    description: str = ""
    required: bool = True  # an optional dimension may be left out of a judgment


class ProgressOut(BaseModel):
    judged_by_me: int
    my_target: int
    items_done: int
    items_total: int


class SuggestionOut(BaseModel):
    """The judge's suggestion on one dimension, in canonical candidate ids: a preference (chosen ≻ rejected), a
    tie, or a ranking (``ranking``: tiers of ids, best first); ``confidence`` 0–1 where the judge's server gave
    it. The rationale is model output: render it as untrusted text."""

    kind: Literal["preference", "tie", "ranking"]
    chosen: int | None = None
    rejected: int | None = None
    ranking: list[list[int]] | None = None
    confidence: float | None = None
    rationale: str = ""


class AssignmentOut(BaseModel):
    assignment_id: int
    item_id: int
    external_id: str | None
    prompt: Any
    candidates: list[CandidateOut]
    dimensions: list[DimensionOut]
    lease_expires_at: datetime
    progress: ProgressOut
    # The judge's suggestion per dimension when the project shows suggestions before the answer ("shown"; a
    # judgment of this lease then counts as made with the suggestion in view), else null.
    suggestions: dict[str, SuggestionOut] | None = None


class SkippedOut(BaseModel):
    """An item I skipped: re-opening it makes it my lease again while it has room."""

    assignment_id: int
    item_id: int
    external_id: str | None
    reason: str
    skipped_at: datetime


class NextOut(BaseModel):
    assignment: AssignmentOut | None
    progress: ProgressOut
    detail: str | None = None


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
    active_seconds: float | None = None
    version: int
    created_at: datetime
    updated_at: datetime
    # Whether a judge's suggestion was in view before it was submitted (null: imported, or stored before this
    # was recorded).
    suggestion_shown: bool | None = None
    # Only in the answer to a submit, when the project shows suggestions after the answer ("after").
    suggestions: dict[str, SuggestionOut] | None = None


class JudgmentForm(FormModel):
    """The annotation page's judgment: under each dimension's key a letter (A, B, ... in this annotator's display
    order), ``tie`` or ``na``; with k ≥ 3 candidates ``rank`` (or nothing) and ``<key>__best``, ``<key>__worst``,
    or in a ranking project the typed order ``<key>__rank`` ("C>>A=BD", see ``app.annotation.ranking``); with
    k = 2 in a project that asks how much better, ``<key>__strength`` (1 slightly, 2 better, 3 much better).

    Missing fields read as the page's empty ones: no reason, boxes unchecked, no time measured."""

    model_config = ConfigDict(extra="allow")  # the letter fields are named after the project's dimensions
    reason: str = ""
    all_bad: bool = False
    problematic: bool = False
    seconds: float | None = None
    active_seconds: float | None = None

    @field_validator("all_bad", "problematic", mode="before")
    @classmethod
    def _checked(cls, value: str) -> bool:
        return value == "1"  # what the page's checkbox posts; anything else is unchecked

    @field_validator("seconds", "active_seconds", mode="before")
    @classmethod
    def _seconds_on_task(cls, value: str) -> float | None:
        # Measured by the page's script: clamped to a day, and left to the server's own measure when unreadable.
        try:
            return max(0.0, min(float(value or ""), 86_400.0))
        except ValueError:
            return None

    def judgment(self, *, project: Project, display_order: list[int]) -> JudgmentIn:
        """The judgment in canonical candidate ids, read against the order the annotator's page showed."""
        if len(self.reason) > 10_000:
            raise Invalid("The reason is too long (10,000 characters at most)")
        return JudgmentIn(
            verdicts=self.verdicts(project=project, display_order=display_order),
            reason=self.reason,
            all_bad=self.all_bad,
            problematic=self.problematic,
            seconds=self.seconds,
            active_seconds=self.active_seconds,
        )

    def verdicts(self, *, project: Project, display_order: list[int]) -> dict[str, VerdictIn]:
        """Turn the page's letters into canonical verdicts, one per answered dimension; a 422 naming the first
        required dimension left unanswered (an optional one left blank has no verdict)."""
        posted = self.fields()
        letters = {LETTERS[i]: cid for i, cid in enumerate(display_order)}
        verdicts: dict[str, VerdictIn] = {}
        required = set(required_keys(project))
        for dim in dimension_keys(project):
            value = (posted.get(dim) or "").strip()
            given = value or any((posted.get(f"{dim}__{part}") or "").strip() for part in ("best", "worst", "rank"))
            if dim not in required and not given:
                continue
            verdicts[dim] = _posted_verdict(project, dim, value, posted, letters)
        return verdicts


def _posted_verdict(
    project: Project, dim: str, value: str, posted: dict[str, str], letters: dict[str, int]
) -> VerdictIn:
    """One dimension's posted answer as a canonical verdict (``letters``: display letter → candidate id)."""
    k = len(letters)
    try:
        if value in ("tie", "na"):
            return VerdictIn.model_validate({"kind": value})
        if k == 2 and value in letters:
            other = next(c for letter, c in letters.items() if letter != value)
            strength = _posted_strength(dim, posted) if project.strength else None
            return VerdictIn(kind="preference", chosen=letters[value], rejected=other, strength=strength)
        if k > 2 and value in ("", "rank") and project.ranking_mode == "rank":
            return _posted_ranking(dim, posted.get(f"{dim}__rank") or "", letters)
        if k > 2 and value in ("", "rank"):
            best, worst = posted.get(f"{dim}__best", ""), posted.get(f"{dim}__worst", "")
            if best not in letters or worst not in letters:
                raise Invalid(
                    f"{dim}: pick both the best and the worst answer" if best or worst else f"{dim}: no answer given"
                )
            return VerdictIn(kind="preference", chosen=letters[best], rejected=letters[worst])
        raise Invalid(f"{dim}: no answer given")
    except ValueError as exc:  # pydantic's check: best and worst must differ
        raise Invalid(f"{dim}: the best and the worst answer must be different") from exc


def _posted_strength(dim: str, posted: dict[str, str]) -> int:
    strength = (posted.get(f"{dim}__strength") or "").strip()
    if strength not in ("1", "2", "3"):
        raise Invalid(f"{dim}: say how much better (slightly, better or much better)")
    return int(strength)


def _posted_ranking(dim: str, typed: str, letters: dict[str, int]) -> VerdictIn:
    if not typed.strip():
        raise Invalid(f"{dim}: no answer given")
    try:
        tiers, much = parse_order(typed, "".join(letters))
    except ValueError as exc:
        raise Invalid(f"{dim}: {exc}") from exc
    ranking = [sorted(letters[letter] for letter in tier) for tier in tiers]
    return VerdictIn(kind="ranking", ranking=ranking, much=much)


class SubmitForm(JudgmentForm):
    submit_key: str = ""  # the page's key for this answer; a fresh one when it sent none


class EditForm(JudgmentForm):
    version: int | None = None  # the version the edit started from; None when missing or unreadable

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: str) -> int | None:
        try:
            return int(value)
        except ValueError:
            return None


class SkipForm(FormModel):
    skip_reason: str = ""


def letters_from_verdicts(verdicts: dict[str, VerdictIn], display_order: list[int]) -> dict[str, str]:
    """The inverse of ``JudgmentForm.verdicts``, to fill the form when a judgment is reopened."""
    label = letters_of(display_order)
    out: dict[str, str] = {}
    for dim, verdict in verdicts.items():
        if verdict.kind == "ranking":
            out[dim] = "rank"
            out[f"{dim}__rank"] = order_text(ranking_letters(verdict.ranking or [], label), verdict.much or [])
        elif verdict.kind != "preference":
            out[dim] = verdict.kind
        elif len(display_order) == 2:
            out[dim] = label.get(verdict.chosen or -1, "")
            if verdict.strength is not None:
                out[f"{dim}__strength"] = str(verdict.strength)
        else:
            out[dim] = "rank"
            out[f"{dim}__best"] = label.get(verdict.chosen or -1, "")
            out[f"{dim}__worst"] = label.get(verdict.rejected or -1, "")
    return out
