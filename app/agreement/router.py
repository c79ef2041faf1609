"""HTML: the agreement dashboard of a project (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from app.agreement.cache import CacheVersion, current_version
from app.agreement.schemas import AnnotatorFigures, CachedAgreementOut
from app.i18n import current_language
from app.kit.cache import Cache
from app.kit.htmx import render
from app.projects.deps import AdminProjectDep
from app.templating import templates
from app.web.deps import SessionDep

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


def _sorted(annotators: list[AnnotatorFigures], sort: str, reliability: dict[int, float]) -> list[AnnotatorFigures]:
    if sort == "reliability":
        return sorted(annotators, key=lambda a: reliability.get(a.user_id or -1, 2.0))
    return sorted(annotators, key=SORTS.get(sort, SORTS["annotator"]))


SECTION_NAMES = ("dimensions", "timeline", "heatmap", "conflicts")
# The rendered HTML of the heavy parts of the page that are the same for every admin (50 annotators: a 50 × 50
# grid, ~130 ms of rendering that holds the worker's GIL). Keyed by (version of the cache row, language); 32
# entries, least recently used out, no TTL. An entry never goes stale: none of the sections shows a project
# field, a user or the time — everything in them comes from the figures of that version.
RENDERED_SECTIONS: Cache[tuple[CacheVersion, str], dict[str, Markup]] = Cache("agreement.rendered_sections", 32)


def _sections(figures: CachedAgreementOut, version: CacheVersion | None) -> dict[str, Markup]:
    """The per-dimension table, the timeline and the κ grid as HTML; from ``RENDERED_SECTIONS`` when the figures come
    from the cache row (figures computed on the spot are small and rendered each time)."""
    key = (version, current_language()) if version is not None else None
    if key is not None and (hit := RENDERED_SECTIONS.get(key)) is not None:
        return hit
    # Only what the figures hold: the sections must not depend on the user, the session or the time.
    context = {
        "figures": figures,
        "names": sorted({p.a for p in figures.pairs} | {p.b for p in figures.pairs}),
        "grid": {(p.a, p.b): p for p in figures.pairs} | {(p.b, p.a): p for p in figures.pairs},
        "cells": {(c.first, c.second): c for c in figures.conflicts}
        | {(c.second, c.first): c for c in figures.conflicts},
        "band": _band,
    }
    sections = {
        name: Markup(templates.env.get_template(f"agreement/_{name}.html").render(context)) for name in SECTION_NAMES
    }
    if key is not None:
        RENDERED_SECTIONS.put(key, sections)
    return sections


@router.get("/projects/{project}/agreement")
def dashboard(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """κ and α per dimension with 95% intervals, the annotator × annotator κ grid, per-annotator figures and
    judgments over time — from the figures the worker keeps; while they are stale the page says so and htmx
    asks again every few seconds."""
    shown = current_version(session, project=project)
    figures = shown.figures
    sort = request.query_params.get("sort", "annotator")
    context: dict[str, Any] = {"request": request, "project": project, "figures": figures, "sort": sort}
    if figures is not None:
        # Read on each view, not cached with the figures: the consensus fit has a life of its own (a stored row).
        # Imported here: the consensus module brings crowd-kit and pandas, which creating the app must not load.
        from app.consensus.service import annotator_reliability

        reliability = annotator_reliability(session, project=project) or {}
        context |= {
            "sections": _sections(figures, shown.version),
            "annotators": _sorted(figures.annotators, sort, reliability),
            "reliability": reliability,
        }
    return render(request, "agreement/dashboard.html", context, fragment="agreement/_figures.html")
