"""JSON: the agreement figures of a project."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.agreement import service
from app.agreement.schemas import AgreementOut
from app.auth.deps import SessionDep
from app.projects.deps import AdminProjectDep

router = APIRouter(tags=["agreement"])


@router.get("/projects/{project}/agreement", response_model=AgreementOut)
def agreement(
    project: AdminProjectDep,
    session: SessionDep,
    bootstrap: int = Query(default=200, ge=0, le=2000, description="bootstrap resamples for the 95% intervals"),
) -> AgreementOut:
    """Fleiss' κ, Krippendorff's α and percent agreement per dimension (with 95% bootstrap intervals),
    Cohen's κ per annotator pair, and per-annotator figures."""
    return service.compute(session, project=project, resamples=bootstrap)
