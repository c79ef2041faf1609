"""The judge's suggestions in Chromium: pre-selected and overridable ("shown"), feedback after a submit
("after"), nothing at all ("hidden"); and what each judgment records about it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db import Database
from app.models import Assignment, Judgment, Verdict
from tests.annotation.test_suggestions import candidate_ids, suggest
from tests.factories import make_item, make_project, make_user


def _project(db: Database, mode: str) -> dict[str, int]:
    """Two items; the judge prefers the last candidate of the first on "overall" only."""
    with db.session() as s:
        user = make_user(s, "ann")
        project = make_project(s, "judge", k=2, overlap=1, members=[user], suggestions=mode, dimensions=[])
        item = make_item(s, project)
        make_item(s, project)
        first, last = candidate_ids(s, item.id)
        suggest(s, item, "overall", "preference", chosen=last, rejected=first, confidence=0.9)
        s.commit()
        return {"item": item.id, "first": first, "last": last}


def _open(page: Any, signed_in: Any) -> str:
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects/judge/annotate")
    page.wait_for_selector("#judge-form")
    return str(page.get_attribute("#annotate-panel", "data-item"))


def _letter_of(db: Database, item_id: int, candidate_id: int) -> str:
    with db.session(write=False) as s:
        order = s.scalar(select(Assignment.display_order).where(Assignment.item_id == item_id))
    assert order is not None
    return "AB"[list(order).index(candidate_id)]


def _stored(db: Database, item_id: int) -> tuple[bool | None, int | None]:
    with db.session(write=False) as s:
        judgment = s.scalar(select(Judgment).where(Judgment.item_id == item_id))
        assert judgment is not None
        chosen = s.scalar(select(Verdict.chosen_candidate_id).where(Verdict.judgment_id == judgment.id))
        return judgment.suggestion_shown, chosen


def _first_item_then_next(page: Any, db: Database, ids: dict[str, int], signed_in: Any) -> None:
    """Open the page on the suggested item (the queue may hand out either item first)."""
    if _open(page, signed_in) != str(ids["item"]):
        other = page.get_attribute("#annotate-panel", "data-item")
        page.keyboard.press("t")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "o => document.getElementById('annotate-panel').dataset.item !== o"
            " && !!document.getElementById('judge-form')",
            arg=other,
        )


def test_shown_preselects_the_suggestion_and_submits_the_override(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    ids = _project(db, "shown")
    _first_item_then_next(page, db, ids, signed_in)
    judge = _letter_of(db, ids["item"], ids["last"])
    mine = "B" if judge == "A" else "A"
    suggested = page.locator("tr[data-dim=overall] label.choice.suggested input")
    assert suggested.get_attribute("value") == judge and suggested.is_checked()
    assert "90% sure" in page.inner_text("tr[data-dim=overall] .suggestion-tag")
    shots(page, "annotate-suggestion-shown")
    page.focus("tr[data-dim=overall]")
    page.keyboard.press(mine.lower())  # override with the usual key
    assert page.is_checked(f"tr[data-dim=overall] input[value={mine}]")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#annotate-panel .ok")
    page.wait_for_load_state("networkidle")
    shown, chosen = _stored(db, ids["item"])
    assert shown is True and chosen == ids["first"]  # the override, not the suggestion


def test_after_shows_feedback_once_submitted(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    ids = _project(db, "after")
    _first_item_then_next(page, db, ids, signed_in)
    assert page.locator(".suggestion-tag, .choice.suggested, #suggestion-feedback").count() == 0
    assert page.locator("#judge-form input:checked").count() == 0
    judge = _letter_of(db, ids["item"], ids["last"])
    page.keyboard.press(judge.lower())
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#suggestion-feedback")
    row = page.inner_text("#suggestion-feedback .feedback-row")
    assert judge in row and "same" in row
    shots(page, "annotate-suggestion-feedback")
    page.click("[data-action=dismiss-feedback]")
    assert page.locator("#suggestion-feedback").is_hidden()
    shown, chosen = _stored(db, ids["item"])
    assert shown is False and chosen == ids["last"]


def test_hidden_leaves_no_trace(page: Any, signed_in: Any, db: Database) -> None:
    ids = _project(db, "hidden")
    _first_item_then_next(page, db, ids, signed_in)
    assert page.locator(".suggestion-tag, .choice.suggested, #suggestion-note").count() == 0
    assert page.locator("#judge-form input:checked").count() == 0
    page.keyboard.press("a")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#annotate-panel .ok")
    page.wait_for_load_state("networkidle")
    assert page.locator("#suggestion-feedback").count() == 0
    assert _stored(db, ids["item"])[0] is False
