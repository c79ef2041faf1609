"""The judge's suggestions where people judge: before the answer (mode "shown": pre-selected on the page,
overridable), after it (mode "after": beside the annotator's own answer, as feedback), or not at all ("hidden").

Suggestions are in canonical candidate ids, as verdicts are; the page names candidates by the letters of each
annotator's display order, so everything shown here is mapped through that order. A judgment records whether a
suggestion was on the page (``Judgment.suggestion_shown``) from the project's mode at submit time: the anchoring
figures must not depend on what a client says it showed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.annotation.dimensions import dimension_keys, letters_of
from app.annotation.ranking import order_text, ranking_letters, verdict_text
from app.annotation.schemas import SuggestionOut, VerdictIn
from app.i18n import gettext
from app.judge.repository import primary_suggestions
from app.models import Assignment, Project, Suggestion

SHOWN = "shown"
AFTER = "after"


@dataclass(frozen=True)
class Suggested:
    """The judge's verdict on one dimension, as a verdict in canonical ids (preference, tie or ranking)."""

    verdict: VerdictIn
    confidence: float | None
    rationale: str


def _verdict_of(suggestion: Suggestion) -> VerdictIn | None:
    """A stored suggestion as a verdict; None for "unsure" (it suggests nothing) or a malformed ranking."""
    try:
        if suggestion.kind == "preference":
            return VerdictIn(
                kind="preference", chosen=suggestion.chosen_candidate_id, rejected=suggestion.rejected_candidate_id
            )
        if suggestion.kind == "tie":
            return VerdictIn(kind="tie")
        if suggestion.kind == "ranking":
            return VerdictIn(kind="ranking", ranking=(suggestion.ranking or {}).get("tiers"))
    except ValidationError:
        return None
    return None


def suggestions_for(session: Session, *, project: Project, item_id: int, round_: int) -> dict[str, Suggested]:
    """The suggestion that counts on each of the project's dimensions for this candidate round of the item
    ("overall" first); dimensions where the judge was unsure, or did not answer, are left out."""
    found = primary_suggestions(session, project=project, item_ids=[item_id])
    out: dict[str, Suggested] = {}
    for dim in dimension_keys(project):
        suggestion = found.get((item_id, dim))
        verdict = _verdict_of(suggestion) if suggestion is not None and suggestion.round == round_ else None
        if suggestion is not None and verdict is not None:
            out[dim] = Suggested(verdict, suggestion.confidence, suggestion.rationale)
    return out


def shown_before_submit(session: Session, *, project: Project, assignment: Assignment) -> dict[str, Suggested]:
    """What the page and the API show with a lease: the suggestions in mode "shown", else nothing (no query)."""
    if project.suggestions != SHOWN:
        return {}
    return suggestions_for(session, project=project, item_id=assignment.item_id, round_=assignment.round)


def suggestion_was_shown(session: Session, *, project: Project, assignment: Assignment) -> bool:
    """Whether a suggestion was on the page (or in the API's lease) before this lease's judgment: mode "shown"
    and at least one dimension with a suggestion."""
    return bool(shown_before_submit(session, project=project, assignment=assignment))


def suggestions_out(suggested: dict[str, Suggested]) -> dict[str, SuggestionOut]:
    """The API's shape: per dimension, the verdict in canonical candidate ids with the judge's confidence."""
    return {
        dim: SuggestionOut(
            kind=s.verdict.kind,
            chosen=s.verdict.chosen,
            rejected=s.verdict.rejected,
            ranking=s.verdict.ranking,
            confidence=s.confidence,
            rationale=s.rationale,
        )
        for dim, s in suggested.items()
    }


def ends(verdict: VerdictIn) -> tuple[frozenset[int], frozenset[int]] | str:
    """A verdict's best and worst (each a set: tied candidates share it), or its kind for a tie or n.a.; a ranking
    of one tier is a tie."""
    if verdict.kind == "preference":
        return frozenset([verdict.chosen or 0]), frozenset([verdict.rejected or 0])
    tiers = verdict.ranking or []
    if verdict.kind == "ranking" and len(tiers) > 1:
        return frozenset(tiers[0]), frozenset(tiers[-1])
    return "tie" if verdict.kind == "ranking" else verdict.kind


def agrees(mine: VerdictIn, judge: VerdictIn) -> bool | None:
    """Whether an answer agrees with the judge's: two rankings must order the candidates the same (the "much"
    marks aside); otherwise the same best and worst, or both a tie. None when the answer is n.a."""
    if mine.kind == "na":
        return None
    if mine.kind == "ranking" and judge.kind == "ranking":
        return [sorted(t) for t in mine.ranking or []] == [sorted(t) for t in judge.ranking or []]
    return ends(mine) == ends(judge)


def _row_fields(dim: str, verdict: VerdictIn, letter: dict[int, str], *, ranks: bool) -> dict[str, str]:
    """One row's form fields for a suggested verdict (as ``letters_from_verdicts`` fills an edited judgment); a
    best or worst that several candidates share pre-selects nothing."""
    shape = ends(verdict)
    if shape == "tie":
        return {dim: "tie"}
    if ranks:
        if verdict.kind != "ranking":
            return {}  # a best and a worst are not an order of every candidate
        return {dim: "rank", f"{dim}__rank": order_text(ranking_letters(verdict.ranking or [], letter), [])}
    if isinstance(shape, str) or len(shape[0]) != 1 or len(shape[1]) != 1:
        return {}
    best, worst = letter.get(next(iter(shape[0])), ""), letter.get(next(iter(shape[1])), "")
    if len(letter) == 2:
        return {dim: best} if best else {}
    return {dim: "rank", f"{dim}__best": best, f"{dim}__worst": worst} if best and worst else {}


def _text(verdict: VerdictIn, letter: dict[int, str]) -> str:
    """A verdict as the page names it: "A ≻ B", "C > A = B > D", tie or n.a."""
    if verdict.kind in ("tie", "na"):
        return gettext("tie") if verdict.kind == "tie" else gettext("n.a.")
    if verdict.kind == "preference" and len(letter) == 2 and verdict.strength is None:
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


def percent(confidence: float | None) -> int | None:
    return None if confidence is None else round(confidence * 100)


def page_suggestions(
    suggested: dict[str, Suggested], *, display_order: Sequence[int], ranks: bool
) -> dict[str, dict[str, Any]]:
    """Per dimension, what a page row shows of the suggestion: its text in the annotator's letters, the judge's
    confidence in percent, its rationale, and the form fields it pre-selects."""
    letter = letters_of(list(display_order))
    return {
        dim: {
            "text": _text(s.verdict, letter),
            "confidence": percent(s.confidence),
            "rationale": s.rationale,
            "fields": _row_fields(dim, s.verdict, letter, ranks=ranks),
        }
        for dim, s in suggested.items()
    }


def prefilled_values(shown: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The form's starting values: every suggested choice pre-selected (the annotator may change any of them)."""
    values: dict[str, str] = {}
    for row in shown.values():
        values.update(row["fields"])
    return values


def feedback_rows(
    suggested: dict[str, Suggested],
    verdicts: dict[str, VerdictIn],
    *,
    display_order: Sequence[int],
    dimensions: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """After a submit (mode "after"): per dimension with a suggestion, the judge's answer beside the annotator's,
    in the letters their page showed, and whether the two agree (None: not comparable, e.g. n.a. or left out)."""
    letter = letters_of(list(display_order))
    rows = []
    for d in dimensions:
        s = suggested.get(d["key"])
        if s is None:
            continue
        mine = verdicts.get(d["key"])
        rows.append(
            {
                "label": d["label"],
                "judge": _text(s.verdict, letter),
                "confidence": percent(s.confidence),
                "rationale": s.rationale,
                "mine": _text(mine, letter) if mine is not None else "—",
                "agrees": agrees(mine, s.verdict) if mine is not None else None,
            }
        )
    return rows
