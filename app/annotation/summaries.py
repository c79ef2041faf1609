"""One-line summaries of judgments for the annotator's own list: "Overall: B · Helpful: B · Honest: tie" (a
ranking "C > A = B > D", a strength "A ≫ B"), in the letters their page showed (their display order) and the
labels of their language."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.annotation import repository
from app.annotation.dimensions import letters_of
from app.annotation.judgments import verdicts_of
from app.annotation.ranking import verdict_text
from app.annotation.schemas import VerdictIn
from app.i18n import gettext
from app.models import Judgment


def _answer(verdict: VerdictIn, letter: dict[int, str], k: int) -> str:
    if verdict.kind == "tie":
        return gettext("tie")
    if verdict.kind == "na":
        return gettext("n.a.")
    if k == 2 and verdict.kind == "preference" and verdict.strength is None:
        return letter.get(verdict.chosen or -1, "?")
    shown = verdict_text(
        verdict.kind,
        verdict.chosen,
        verdict.rejected,
        letter,
        strength=verdict.strength,
        ranking=verdict.ranking,
        much=verdict.much,
    )
    return shown or "?"


def verdict_summary(verdicts: dict[str, VerdictIn], display_order: list[int], dimensions: list[dict[str, Any]]) -> str:
    """The verdicts in the order of ``dimensions`` (rows with "key" and "label"): the letter chosen (k = 2; with a
    strength "A ≫ B"), best ≻ worst (k ≥ 3), a ranking ("C ≫ A = B > D"), tie or n.a.; a dimension left out (an
    optional one) is not named."""
    letter = letters_of(display_order)
    parts = [
        f"{d['label']}: {_answer(verdicts[d['key']], letter, len(display_order))}"
        for d in dimensions
        if d["key"] in verdicts
    ]
    return " · ".join(parts)


def summaries(session: Session, judgments: list[Judgment], dimensions: list[dict[str, Any]]) -> dict[int, str]:
    """The summary of each judgment, by judgment id (two queries for the whole list)."""
    verdicts = verdicts_of(session, [j.id for j in judgments])
    assignments = repository.assignments_by_id(session, sorted({j.assignment_id for j in judgments}))
    return {
        j.id: verdict_summary(verdicts[j.id], assignments[j.assignment_id].display_order, dimensions) for j in judgments
    }
