"""The annotation page in Chromium: Enter, time on task, where a new item opens, the diff key, what is missing,
and a phone."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.models import Judgment, Project
from tests.e2e.conftest import ARTIFACTS
from tests.factories import make_item, make_items, make_project, make_user

LONG = "\n\n".join(f"Paragraph {i}: " + "a long answer that goes on and on " * 6 for i in range(40))


def _project(db: Database, *, k: int = 2, items: int = 3, candidates: list[list[str]] | None = None) -> str:
    with db.session() as s:
        user = make_user(s, "ann")
        project = make_project(s, "judge", k=k, overlap=1, members=[user], guidelines="Be **fair**.")
        if candidates is None:
            make_items(s, project, items)
        for texts in candidates or []:
            make_item(s, project, candidates=texts)
        s.commit()
    return "judge"


def _open(page: Any, signed_in: Any, slug: str) -> str:
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects/{slug}/annotate")
    page.wait_for_selector("#judge-form")
    return str(page.get_attribute("#annotate-panel", "data-item"))


def _judgments(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Judgment)) or 0)


def _next_item(page: Any, before: str) -> str:
    page.wait_for_function(
        "before => { const p = document.getElementById('annotate-panel');"
        " return p && p.dataset.item && p.dataset.item !== before; }",
        arg=before,
    )
    page.wait_for_load_state("networkidle")
    return str(page.get_attribute("#annotate-panel", "data-item"))


# --- 1: Enter on a focused link or button does that link's or button's own thing -------------------------------


def test_enter_on_guidelines_opens_them_and_submits_nothing(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    first = _open(page, signed_in, _project(db))
    page.keyboard.press("a")
    page.keyboard.press("=")  # a complete answer: a stray submit would store it
    page.focus(".annotate-head [data-action=toggle-guidelines]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#guidelines:not([hidden])")
    page.wait_for_load_state("networkidle")
    assert _judgments(db) == 0 and page.get_attribute("#annotate-panel", "data-item") == first
    shots(page, "annotate-enter-on-guidelines")
    # Ctrl+Enter submits from anywhere, a focused button included.
    page.focus(".annotate-head [data-action=toggle-guidelines]")
    page.keyboard.press("Control+Enter")
    _next_item(page, first)
    assert _judgments(db) == 1


def test_enter_on_my_judgments_follows_the_link(page: Any, signed_in: Any, db: Database) -> None:
    _open(page, signed_in, _project(db))
    page.focus(".annotate-head a[href$='/judgments']")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/projects/judge/judgments$"))
    assert _judgments(db) == 0


# --- 2: time on task counts active time only ------------------------------------------------------------------


def test_an_idle_sit_is_not_counted_as_time_on_task(page: Any, signed_in: Any, db: Database) -> None:
    page.clock.install()
    first = _open(page, signed_in, _project(db))
    page.keyboard.press("a")
    page.keyboard.press("=")
    page.clock.fast_forward(150_000)  # 150 s without a key, a click or a scroll
    page.keyboard.press("Enter")
    _next_item(page, first)
    with db.session(write=False) as s:
        wall, active = s.execute(select(Judgment.seconds, Judgment.active_seconds)).one()
    assert wall >= 150
    assert active is not None and active < wall / 3  # the idle stretch counts as a short pause at most


def test_time_in_a_hidden_tab_is_not_active(page: Any, signed_in: Any, db: Database) -> None:
    page.clock.install()
    first = _open(page, signed_in, _project(db))
    page.keyboard.press("a")
    page.keyboard.press("=")
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.clock.fast_forward(20_000)  # shorter than the idle limit, but hidden
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.keyboard.press("Enter")
    _next_item(page, first)
    with db.session(write=False) as s:
        wall, active = s.execute(select(Judgment.seconds, Judgment.active_seconds)).one()
    assert wall >= 20 and active is not None and active < wall - 15


# --- 6: each new item opens at its prompt --------------------------------------------------------------------


def _prompt_top_after_submit(tab: Any, signed_in: Any, slug: str) -> tuple[float, float]:
    first = _open(tab, signed_in, slug)
    tab.keyboard.press("a")
    tab.keyboard.press("=")
    tab.keyboard.press("Enter")
    _next_item(tab, first)
    # The page settles the new item (htmx's settle, then the script's init focuses its first row and scrolls to
    # its top) a moment after the swap: measure once the script has taken the new item.
    tab.wait_for_function(
        "() => { const a = document.activeElement; return !!(a && a.closest('#judge-form .dim-row')); }"
    )
    top = float(tab.evaluate("() => document.querySelector('#annotate-panel .prompt').getBoundingClientRect().top"))
    return top, float(tab.evaluate("() => window.innerHeight"))


def test_a_new_item_opens_at_its_prompt_on_a_desktop(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    slug = _project(db, candidates=[[LONG, LONG + " B"] for _ in range(2)])
    top, height = _prompt_top_after_submit(page, signed_in, slug)
    assert 0 <= top < height / 4
    saved = page.locator("#annotate-panel .ok[role=status]")
    box = saved.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height  # "Saved" in view
    shots(page, "annotate-next-item-desktop")


def test_a_new_item_opens_at_its_prompt_on_a_phone(phone: Any, signed_in: Any, db: Database, shots: Any) -> None:
    slug = _project(db, candidates=[[LONG, LONG + " B"] for _ in range(2)])
    top, height = _prompt_top_after_submit(phone, signed_in, slug)
    assert 0 <= top < height / 4
    shots(phone, "annotate-next-item-phone")


# --- 7: the diff key collides with no candidate letter ---------------------------------------------------------


def test_the_diff_key_opens_the_diff_and_d_still_picks_candidate_d(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    near = ["The cat sat on the mat all day long.", "The cat sat on the mat all day long!"]
    _open(page, signed_in, _project(db, k=4, candidates=[[*near, "Something else entirely", "Nothing alike"]]))
    assert page.is_visible("#diff summary kbd") and not page.get_attribute("#diff", "open")
    page.keyboard.press("v")
    assert page.get_attribute("#diff", "open") is not None
    page.keyboard.press("d")
    assert page.is_checked("tr[data-dim=overall] input[name=overall__best][value=D]")
    page.keyboard.press("?")
    assert page.is_visible("#help tr[data-needs-diff]")
    shots(page, "annotate-diff-key")


def test_the_diff_key_is_not_offered_without_a_diff(page: Any, signed_in: Any, db: Database) -> None:
    _open(page, signed_in, _project(db, candidates=[["Short and sweet.", "A completely different reply here."]]))
    assert page.locator("#diff").count() == 0
    page.keyboard.press("?")
    assert page.is_visible("#help") and not page.is_visible("#help tr[data-needs-diff]")


# --- 8: Enter on an incomplete form says what is missing -------------------------------------------------------


def _labels(page: Any, dims: list[str]) -> list[str]:
    return [page.inner_text(f"tr[data-dim={d}] .dim-label").strip() for d in dims]


def test_enter_on_an_incomplete_form_names_what_is_missing(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    first = _open(page, signed_in, _project(db))
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == "judge"))
        assert project is not None
        dims = list(project.dimension_keys)
    page.keyboard.press("a")  # overall
    page.keyboard.press("b")  # the first dimension
    page.keyboard.press("Enter")
    note = page.locator("#missing-note")
    assert note.is_visible() and note.get_attribute("aria-live")
    left = dims[1:]
    assert note.inner_text() == f"{len(left)} dimensions left: {', '.join(_labels(page, left))}"
    assert page.evaluate("() => document.activeElement.dataset.dim") == left[0]
    shots(page, "annotate-missing")
    # An optional row (data-optional="1") is not asked for.
    page.evaluate(f"() => document.querySelector('tr[data-dim={dims[-1]}]').dataset.optional = '1'")
    page.keyboard.press("Enter")
    assert note.inner_text() == f"{len(left) - 1} dimensions left: {', '.join(_labels(page, left[:-1]))}"
    for _ in left[:-1]:
        page.keyboard.press("t")
    assert not note.is_visible()  # answered: the note goes
    assert page.get_attribute("#annotate-panel", "data-item") == first and _judgments(db) == 0


def test_a_single_missing_row_is_named_alone(page: Any, signed_in: Any, db: Database) -> None:
    _open(page, signed_in, _project(db))
    page.keyboard.press("a")
    page.keyboard.press("=")
    page.evaluate("() => document.querySelectorAll('tr[data-dim=honest] input').forEach(i => { i.checked = false; })")
    page.keyboard.press("Enter")
    label = _labels(page, ["honest"])[0]
    assert page.inner_text("#missing-note") == f"1 dimension left: {label}"
    assert page.evaluate("() => document.activeElement.dataset.dim") == "honest"


# --- 11: a phone ----------------------------------------------------------------------------------------------


def test_on_a_phone_same_as_overall_is_a_tap_and_key_hints_are_gone(
    phone: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    code = "```python\nvalue = " + " + ".join(f"item_{i}" for i in range(80)) + "\n```"
    _open(phone, signed_in, _project(db, candidates=[[code, "Plain words."]]))
    phone.tap("tr[data-dim=overall] label.choice:has(input[value=A])")
    phone.tap("tr[data-dim=honest] [data-action=same-as-overall]")
    assert phone.is_checked("tr[data-dim=honest] input[value=A]")
    assert not phone.is_checked("tr[data-dim=polite] input[value=A]")  # only the row tapped
    # No key hints on a touch screen; the candidate letters stay.
    assert not phone.is_visible("#submit-btn kbd") and not phone.is_visible("tr[data-dim=overall] kbd >> text=T")
    assert not phone.is_visible(".annotate-head [data-action=toggle-help]")
    assert phone.is_visible("tr[data-dim=overall] kbd.letter-key >> nth=0")
    # A long line of code scrolls inside its candidate; the column stays within the screen.
    pre = phone.locator(".cand pre").first
    assert pre.evaluate("el => el.scrollWidth > el.clientWidth")
    width = phone.evaluate("() => window.innerWidth")
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= width for box in _boxes(phone, ".cand"))
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= width
    shots(phone, "annotate-phone")
    # A full-page screenshot switches Chromium to a fine pointer while it is taken: the touch layout, as seen.
    phone.locator("tr[data-dim=honest]").scroll_into_view_if_needed()
    phone.screenshot(path=str(ARTIFACTS / "sqlite-annotate-phone-touch.png"))


def _boxes(tab: Any, selector: str) -> list[dict[str, float]]:
    return [b for b in (tab.locator(selector).nth(i).bounding_box() for i in range(tab.locator(selector).count())) if b]
