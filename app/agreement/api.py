"""JSON: the agreement figures of a project."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.agreement import service
from app.agreement.cache import current
from app.agreement.schemas import AgreementOut, CachedAgreementOut
from app.kit.errors import AppError
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["agreement"])


class NotComputedYet(AppError):
    status_code = 503


NOT_COMPUTED = "The figures have not been computed yet: is a worker running (prefstudio worker)?"


@router.get("/projects/{project}/agreement", response_model=CachedAgreementOut | AgreementOut)
def agreement(
    project: AdminProjectDep,
    session: SessionDep,
    live: bool = Query(default=False, description="compute now instead of reading the worker's cache"),
    bootstrap: int = Query(
        default=service.RESAMPLES, ge=0, le=2000, description="bootstrap resamples for the 95% intervals (live only)"
    ),
) -> CachedAgreementOut | AgreementOut:
    """Krippendorff's α (the headline), Fleiss' κ with its coverage and percent agreement per dimension (with 95%
    bootstrap intervals), item-level figures for k ≥ 3 (best–worst agreement; Kendall's W and τ-b for rankings),
    the strength α, Cohen's κ per annotator pair (from the project's minimum of shared items, with an interval),
    per-annotator figures with the position-bias test, conflicts between dimensions and judgments over time —
    the figures the dashboard shows, from the cache the worker keeps (``computed_at``, ``stale``); ``live=true``
    computes them now.
    503 while a large project's figures have never been computed."""
    if live:
        return service.compute(session, project=project, resamples=bootstrap)
    figures = current(session, project=project)
    if figures is None:
        raise NotComputedYet(NOT_COMPUTED)
    return figures
