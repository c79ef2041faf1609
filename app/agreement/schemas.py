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
    fleiss_coverage: float | None = None  # fleiss_units / units: the share of α's pairs that κ covers
    fleiss_ci: IntervalOut | None
    alpha: float | None  # the headline: every pair with two or more ratings
    alpha_ci: IntervalOut | None
    percent_agreement: float | None
    meaning: str  # Landis–Koch band of α
    labels: dict[str, int]  # first / second / tie counts
    # k ≥ 3, whole items: share of annotator pairs giving the same best and worst (a ranking: the same order)
    item_agreement: float | None = None
    item_units: int = 0
    kendall_w: float | None = None  # rankings: mean Kendall's W over items ranked by two or more
    kendall_w_items: int = 0
    kendall_tau: float | None = None  # rankings: mean τ-b of annotator pairs over their shared items
    kendall_tau_pairs: int = 0
    strength_alpha: float | None = None  # interval α over signed strength −3…3 (tie 0), where verdicts give one
    strength_units: int = 0


class PairKappa(BaseModel):
    a: str
    b: str
    kappa: float | None  # None below the project's minimum of shared items (no κ claimed)
    shared_units: int  # overall pairs both rated
    shared_items: int = 0
    enough: bool = True  # shared_items ≥ the project's cohen_min_items
    kappa_ci: IntervalOut | None = None  # bootstrap over the shared items


class ConflictOut(BaseModel):
    first: str  # dimension
    second: str
    pairs: int  # pairs with a majority winner on both
    conflicts: int  # of them, pairs whose winner on one dimension loses on the other


class AnnotatorFigures(BaseModel):
    annotator: str
    user_id: int | None = None
    judgments: int
    median_seconds: float | None
    majority_agreement: float | None  # with the leave-one-out majority, overall pairs
    tie_rate: float
    all_bad_rate: float
    left_choice_rate: float | None  # share of overall preferences for the left-most candidate shown
    left_judgments: int = 0  # overall choices with a known display order (the binomial test's n)
    position_p: float | None = None  # binomial test of left_choice_rate against chance 1/k
    position_bias: bool = False  # p < 0.01 after 20 or more such choices
    outlier: bool
    gold_judgments: int = 0
    gold_accuracy: float | None = None  # share of gold answers (per dimension, "either" skipped) matched
    below_gold_threshold: bool = False
    paused: bool = False
    is_judge: bool = False  # a judge model's row: never in the human-only figures


class AnchoringOut(BaseModel):
    """People's agreement with the primary judge's consistent suggestion, shown before submitting vs hidden."""

    shown_rate: float | None
    shown_n: int
    hidden_rate: float | None
    hidden_n: int
    difference: float | None  # shown − hidden
    difference_ci: IntervalOut | None  # Newcombe's hybrid Wilson interval


class JudgeDimension(BaseModel):
    dimension: str
    kappa: float | None  # Cohen's κ of the judge against the human majority, pairs both labelled
    kappa_n: int  # those pairs
    kappa_ci: IntervalOut | None  # bootstrap over items
    meaning: str  # Landis–Koch band of κ
    majority_agreement: float | None  # observed share of those pairs where the judge gives the majority label
    gold_accuracy: float | None
    gold_n: int = 0
    gold_ci: IntervalOut | None = None  # Wilson
    coverage: float | None  # share of ordinary items with a consistent suggestion
    suggestions: int = 0
    unsure_rate: float | None = None  # share of the judge's suggestions that are "unsure"
    anchoring: AnchoringOut | None = None


class JudgeOut(BaseModel):
    """Judge vs people, per dimension ("overall" first), for the primary judge (``judge``)."""

    judge: str
    judges: list[str]  # every judge with suggestions; each is a rater of its own in the annotator table
    dimensions: list[JudgeDimension]


class TimeBucket(BaseModel):
    start: str  # "2026-11-24" (days) or "2026-11-24T13" (hours, UTC)
    judgments: int


class AgreementOut(BaseModel):
    project: str
    k: int = 2
    overlap: int
    cohen_min_items: int = 20
    dimensions: list[DimensionFigures]
    pairs: list[PairKappa]
    annotators: list[AnnotatorFigures]
    conflicts: list[ConflictOut] = Field(default_factory=list)  # every two dimensions (overall first)
    note: str
    resamples: int = 0  # bootstrap resamples behind the intervals
    timeline_unit: str = "day"  # "hour" while the judgments span two days or less
    timeline: list[TimeBucket] = Field(default_factory=list)  # every judgment of the project, by creation time
    judge: JudgeOut | None = None  # None without suggestions


class CachedAgreementOut(AgreementOut):
    """The figures as the dashboard shows them: from the cache the worker keeps, and how fresh they are."""

    computed_at: datetime
    compute_ms: float
    stale: bool = Field(description="judgments changed since; the worker is recomputing")
