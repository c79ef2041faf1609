"""The consensus model's figures as JSON."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AnnotatorReliability(BaseModel):
    annotator_id: int
    annotator: str
    reliability: float  # chance of reporting the true class on a pair, as the fit estimates it (0..1)
    labels: int  # pair labels it rests on
    flagged: bool  # reliability below the flag threshold, on enough labels


class DimensionFit(BaseModel):
    dimension: str
    fitted_at: datetime | None
    source: str  # fingerprint of the judgments the fit saw
    stale: bool  # the judgments moved since: the worker is fitting again
    fit_ms: float  # loading (this dimension's share) and fitting
    pairs: int  # pairs with at least one label
    labels: int
    annotators: list[AnnotatorReliability]


class ConsensusOut(BaseModel):
    project: str
    model: str  # the model and its position correction, in a few words
    flag_below: float
    min_labels: int
    dimensions: list[DimensionFit]
