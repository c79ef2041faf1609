"""HTML: the agreement dashboard of a project (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.agreement import service
from app.auth.deps import SessionDep
from app.kit.htmx import render
from app.projects.deps import AdminProjectDep

router = APIRouter(tags=["agreement pages"], include_in_schema=False)


def _band(value: float | None) -> str:
    """A CSS class for a κ/α value (Landis–Koch bands)."""
    if value is None:
        return "band-none"
    for upper, name in (
        (0.0, "band-poor"),
        (0.2, "band-slight"),
        (0.4, "band-fair"),
        (0.6, "band-moderate"),
        (0.8, "band-substantial"),
    ):
        if value <= upper:
            return name
    return "band-perfect"


SORTS = {
    "annotator": lambda a: a.annotator,
    "judgments": lambda a: -a.judgments,
    "agreement": lambda a: a.majority_agreement if a.majority_agreement is not None else 2.0,
    "seconds": lambda a: a.median_seconds if a.median_seconds is not None else 1e9,
    "left": lambda a: -(a.left_choice_rate or 0.0),
}


@router.get("/projects/{project}/agreement")
def dashboard(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """κ and α per dimension with 95% intervals, the annotator × annotator κ grid, per-annotator figures and
    judgments over time — from the figures the worker keeps; while they are stale the page says so and htmx
    asks again every few seconds."""
    figures = service.current(session, project=project)
    sort = request.query_params.get("sort", "annotator")
    context: dict[str, Any] = {"request": request, "project": project, "figures": figures, "sort": sort}
    if figures is not None:
        context |= {
            "names": sorted({p.a for p in figures.pairs} | {p.b for p in figures.pairs}),
            "grid": {(p.a, p.b): p for p in figures.pairs} | {(p.b, p.a): p for p in figures.pairs},
            "annotators": sorted(figures.annotators, key=SORTS.get(sort, SORTS["annotator"])),
            "band": _band,
        }
    return render(request, "agreement/dashboard.html", context, fragment="agreement/_figures.html")
