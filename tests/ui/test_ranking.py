"""Rankings and strength on the annotation page in Chromium: a typed order ("CA=BD") with its live chips and
messages, "=" copying the overall order to an empty row, chips dragged by a finger and gaps tapped into ties on a
phone, and the strength keys (a letter, then 1–3). Each stored verdict is checked in the database, in canonical
candidate ids computed from the assignment's display order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.models import Assignment, Judgment, Verdict
from tests.factories import make_items, make_project, make_user


def _project(db: Database, slug: str, *, k: int, dimensions: list[dict[str, str]], **settings: Any) -> str:
    with db.session() as s:
        user = make_user(s, "ann")
        project = make_project(s, slug, k=k, overlap=1, members=[user], dimensions=dimensions, **settings)
        make_items(s, project, 2)
        s.commit()
    return slug


def _open(page: Any, signed_in: Any, slug: str) -> str:
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects/{slug}/annotate")
    page.wait_for_selector("#judge-form")
    return str(page.get_attribute("#annotate-panel", "data-assignment"))


def _stored(page: Any, db: Database, assignment: str) -> tuple[list[int], dict[str, Verdict]]:
    """The display order of the assignment and its judgment's verdicts, once the next item has replaced it."""
    page.wait_for_function(
        "a => { const p = document.getElementById('annotate-panel'); return p && p.dataset.assignment !== a; }",
        arg=assignment,
    )
    with db.session(write=False) as s:
        shown = s.get(Assignment, int(assignment)).display_order  # type: ignore[union-attr]
        judgment = s.scalar(select(Judgment).where(Judgment.assignment_id == int(assignment)))
        assert judgment is not None
        rows = {v.dimension: v for v in s.scalars(select(Verdict).where(Verdict.judgment_id == judgment.id))}
        s.expunge_all()
    return shown, rows


def _judgments(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Judgment)) or 0)


def test_typing_an_order_stores_its_canonical_ranking(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    slug = _project(db, "ranked", k=4, dimensions=[{"key": "helpful", "label": "Helpful"}], ranking_mode="rank")
    assignment = _open(page, signed_in, slug)
    overall = page.locator('.dim-row[data-dim="overall"]')
    page.keyboard.type("caa")
    assert overall.locator(".rank-error").inner_text() == "A is named twice"
    page.keyboard.press("Backspace")
    assert overall.locator(".rank-error").inner_text() == "Missing: B, D"
    assert overall.locator(".rank-chip").all_inner_texts() == ["C", "A", "B", "D"]  # B and D pending
    assert overall.locator(".rank-chip.pending").all_inner_texts() == ["B", "D"]
    page.keyboard.type("=bd")  # after a letter "=" ties; the order is complete and the next row is active
    assert page.input_value('input[name="overall__rank"]') == "CA=BD"
    assert overall.locator(".rank-error").inner_text() == ""
    assert overall.locator(".rank-gap").all_inner_texts() == [">", "=", ">"]
    page.wait_for_selector('.dim-row[data-dim="helpful"].active')
    shots(page, "ranking-typed")
    page.keyboard.press("=")  # on an empty order "=" copies the overall answer
    assert page.input_value('input[name="helpful__rank"]') == "CA=BD"
    page.keyboard.press("Enter")
    shown, rows = _stored(page, db, assignment)
    expected = {"tiers": [[shown[2]], sorted([shown[0], shown[1]]), [shown[3]]], "much": []}
    assert rows["overall"].kind == "ranking" and rows["overall"].ranking == expected
    assert rows["helpful"].ranking == expected


def test_much_better_and_enter_in_the_box_move_on_without_submitting(page: Any, signed_in: Any, db: Database) -> None:
    slug = _project(db, "ranked", k=3, dimensions=[{"key": "helpful", "label": "Helpful"}], ranking_mode="rank")
    assignment = _open(page, signed_in, slug)
    page.click('input[name="overall__rank"]')
    page.keyboard.type("b>>ac")
    assert page.locator('.dim-row[data-dim="overall"] .rank-gap').all_inner_texts() == ["≫", ">"]
    page.keyboard.press("Enter")  # in the box: on to the next row, nothing sent
    page.wait_for_selector('.dim-row[data-dim="helpful"].active')
    assert _judgments(db) == 0
    page.keyboard.press("t")
    page.keyboard.press("Enter")
    shown, rows = _stored(page, db, assignment)
    assert rows["overall"].ranking == {"tiers": [[shown[1]], [shown[0]], [shown[2]]], "much": [0]}
    assert rows["helpful"].kind == "tie"


def _touch_drag(page: Any, source: str, target: str) -> None:
    """A finger dragging ``source`` onto the left part of ``target`` (real touch input through the DevTools
    protocol: the page sees touch pointer events)."""
    cdp = page.context.new_cdp_session(page)
    page.locator(source).scroll_into_view_if_needed()
    a, b = page.locator(source).bounding_box(), page.locator(target).bounding_box()
    x0, y0 = a["x"] + a["width"] / 2, a["y"] + a["height"] / 2
    x1, y1 = b["x"] + 2, b["y"] + b["height"] / 2
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for step in range(1, 9):
        x, y = x0 + (x1 - x0) * step / 8, y0 + (y1 - y0) * step / 8
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_on_a_phone_dragging_chips_reorders_and_a_tap_ties(
    phone: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    slug = _project(db, "ranked", k=3, dimensions=[], ranking_mode="rank")
    assignment = _open(phone, signed_in, slug)
    row = '.dim-row[data-dim="overall"]'
    assert phone.locator(f"{row} .rank-chip").all_inner_texts() == ["A", "B", "C"]
    _touch_drag(phone, f'{row} .rank-chip[data-letter="C"]', f'{row} .rank-chip[data-letter="A"]')
    phone.wait_for_function("() => document.querySelector('input[name=overall__rank]').value === 'C>A>B'")
    assert phone.locator(f"{row} .rank-chip").all_inner_texts() == ["C", "A", "B"]
    phone.locator(f"{row} .rank-gap").nth(0).tap()  # > becomes =
    assert phone.input_value('input[name="overall__rank"]') == "C=A>B"
    shots(phone, "ranking-phone")
    phone.locator("#submit-btn").tap()
    shown, rows = _stored(phone, db, assignment)
    assert rows["overall"].ranking == {"tiers": [sorted([shown[2], shown[0]]), [shown[1]]], "much": []}


def test_strength_keys_store_how_much_better(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    slug = _project(db, "strong", k=2, dimensions=[], strength=True)
    assignment = _open(page, signed_in, slug)
    page.keyboard.press("b")
    page.keyboard.press("Enter")  # B alone is not an answer yet: the row is named, nothing is sent
    page.wait_for_selector("#missing-note:not([hidden])")
    assert _judgments(db) == 0
    page.keyboard.press("3")
    assert page.is_checked('input[name="overall__strength"][value="3"]')
    shots(page, "strength-keys")
    page.keyboard.press("Enter")
    shown, rows = _stored(page, db, assignment)
    assert (rows["overall"].chosen_candidate_id, rows["overall"].strength) == (shown[1], 3)
