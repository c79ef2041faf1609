"""JSON: the consensus model of a project — per dimension, each annotator's reliability."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.consensus import service
from app.consensus.schemas import ConsensusOut
from app.kit.errors import AppError
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["consensus"])


class NotFittedYet(AppError):
    status_code = 503


NOT_FITTED = "The consensus model has not been fitted yet: is a worker running (prefstudio worker)?"


@router.get("/projects/{project}/consensus", response_model=ConsensusOut)
def consensus(
    project: AdminProjectDep,
    session: SessionDep,
    live: bool = Query(default=False, description="fit now instead of reading the worker's stored fits"),
) -> ConsensusOut:
    """Dawid–Skene on the pair labels, per dimension: each annotator's reliability (their chance of reporting the
    true preference, with one confusion matrix per display orientation), when it was fitted (``fitted_at``,
    ``stale``), on which judgments (``source``) and how long it took (``fit_ms``, loading included). From the
    fits the worker keeps; ``live=true`` fits now (so does a small project never fitted; nothing is stored).
    503 while a large project has never been fitted."""
    out = service.summary(session, project=project, live=live)
    if out is None:
        raise NotFittedYet(NOT_FITTED)
    return out
