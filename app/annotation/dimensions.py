"""What a judgment answers: a verdict on "overall" and on each of the project's dimensions, over candidates that
the page names by letter in each annotator's own display order.

A dimension may be optional (``"required": false``): a judgment may leave it out, and its verdict is then missing,
as an "n.a." one is (no pairs, no rating). Its label and description may be given per UI language
(``"labels": {"zh_Hans": {"label": ..., "description": ...}}``); an annotator sees those of their language, else
the dimension's own."""

from __future__ import annotations

from typing import Any

from app.i18n import CATALOG_LOCALES, current_language
from app.models import OVERALL, Project

LETTERS = "ABCD"


def letters_of(candidate_ids: list[int]) -> dict[int, str]:
    """Candidate id → the letter the page shows it under: A for the first of ``candidate_ids`` (a display order, or
    canonical positions), B for the second…"""
    return {cid: LETTERS[i] for i, cid in enumerate(candidate_ids)}


def dimension_keys(project: Project) -> list[str]:
    """The dimensions a judgment of this project may answer, "overall" first."""
    return [OVERALL, *project.dimension_keys]


def required_keys(project: Project) -> list[str]:
    """The dimensions a judgment of this project must answer, "overall" first (it is never optional)."""
    return [OVERALL, *(d["key"] for d in project.dimensions if d.get("required", True))]


def localized(dimension: dict[str, Any], language: str | None = None) -> tuple[str, str]:
    """A dimension's (label, description) in ``language`` (the request's by default), each falling back to the
    dimension's own text where that language has none."""
    locale = CATALOG_LOCALES.get(language or current_language(), "")
    text = (dimension.get("labels") or {}).get(locale) or {}
    label = text.get("label") or dimension.get("label") or dimension["key"]
    return label, text.get("description") or dimension.get("description", "")


def shown_dimensions(project: Project, *, overall_label: str, overall_question: str) -> list[dict[str, Any]]:
    """The rows a judgment form shows: "overall" (with the caller's translated text), then each dimension in the
    request's language, with whether it must be answered."""
    rows: list[dict[str, Any]] = [
        {"key": OVERALL, "label": overall_label, "description": overall_question, "required": True}
    ]
    for d in project.dimensions:
        label, description = localized(d)
        rows.append({"key": d["key"], "label": label, "description": description, "required": d.get("required", True)})
    return rows
