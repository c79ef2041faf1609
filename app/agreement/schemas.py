"""Agreement figures as JSON."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class IntervalOut(BaseModel):
    low: float | None
    high: float | None


class DimensionFigures(BaseModel):
    dimension: str
    units: int  # preference pairs with at least two ratings
    fleiss_kappa: float | None
    fleiss_units: int  # pairs rated by exactly r annotators (the ones Fleiss' κ uses)
    fleiss_ci: IntervalOut | None
    alpha: float | None
    alpha_ci: IntervalOut | None
    percent_agreement: float | None
    meaning: str
    labels: dict[str, int]  # first / second / tie counts


class PairKappa(BaseModel):
    a: str
    b: str
    kappa: float | None
    shared_units: int


class AnnotatorFigures(BaseModel):
    annotator: str
    user_id: int | None = None
    judgments: int
    median_seconds: float | None
    majority_agreement: float | None  # with the leave-one-out majority, overall pairs
    tie_rate: float
    all_bad_rate: float
    left_choice_rate: float | None  # share of overall preferences for the left-most candidate shown
    outlier: bool
    gold_judgments: int = 0
    gold_accuracy: float | None = None  # share of gold answers (per dimension, "either" skipped) matched
    below_gold_threshold: bool = False
    paused: bool = False


class TimeBucket(BaseModel):
    start: str  # "2026-11-24" (days) or "2026-11-24T13" (hours, UTC)
    judgments: int


class AgreementOut(BaseModel):
    project: str
    overlap: int
    dimensions: list[DimensionFigures]
    pairs: list[PairKappa]
    annotators: list[AnnotatorFigures]
    note: str
    resamples: int = 0  # bootstrap resamples behind the intervals
    timeline_unit: str = "day"  # "hour" while the judgments span two days or less
    timeline: list[TimeBucket] = Field(default_factory=list)  # every judgment of the project, by creation time


class CachedAgreementOut(AgreementOut):
    """The figures as the dashboard shows them: from the cache the worker keeps, and how fresh they are."""

    computed_at: datetime
    compute_ms: float
    stale: bool = Field(description="judgments changed since; the worker is recomputing")
