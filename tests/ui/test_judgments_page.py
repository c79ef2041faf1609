"""My judgments and editing them, in Chromium: the list names each item's external id and sums up the verdicts,
skipped items are listed with their reason and can be re-opened (13); a stale edit keeps the user's edit on the
page beside the stored version, to apply over it or discard (3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.annotation.judgments import verdicts_of
from app.db import Database
from app.models import Assignment, Candidate, Judgment, utcnow
from tests.factories import make_item, make_judgment, make_project, make_user

DIMS = [
    {"key": "helpful", "label": "Helpful", "description": "Useful."},
    {"key": "honest", "label": "Honest", "description": "True."},
]


def _world(db: Database) -> dict[str, Any]:
    """Annie judged two items (display order = canonical order: A is position 0) and skipped a third."""
    with db.session() as s:
        annie = make_user(s, "annie")
        project = make_project(s, "mine", k=2, overlap=3, members=[annie], dimensions=DIMS)
        first = make_item(s, project, "first prompt", candidates=["one A", "one B"], external_id="ext-first")
        second = make_item(s, project, "second prompt", candidates=["two A", "two B"], external_id="ext-second")
        skipped = make_item(s, project, "skipped prompt", candidates=["three A", "three B"], external_id="ext-skip")
        j1 = make_judgment(
            s,
            first,
            annie,
            {"overall": ("preference", 1, 0), "helpful": ("preference", 1, 0), "honest": ("tie", None, None)},
        )
        make_judgment(
            s,
            second,
            annie,
            {"overall": ("preference", 0, 1), "helpful": ("na", None, None), "honest": ("preference", 0, 1)},
        )
        order = list(s.scalars(select(Candidate.id).where(Candidate.item_id == skipped.id)))
        gone = Assignment(
            project_id=project.id,
            item_id=skipped.id,
            annotator_id=annie.id,
            round=0,
            status="skipped",
            display_order=order,
            lease_expires_at=utcnow(),
            skip_reason="I cannot read <b>this</b> language",
        )
        s.add(gone)
        s.commit()
        return {"judgment": j1.id, "skipped": gone.id, "skipped_item": skipped.id, "first": first.id}


def test_my_judgments_show_external_ids_verdicts_and_skipped_items_to_reopen(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    world = _world(db)
    base = signed_in(page, "annie")
    page.goto(f"{base}/projects/mine/judgments")
    row = page.locator(f'#my-judgments tr[data-judgment="{world["judgment"]}"]')
    assert row.locator(".ext-id").inner_text() == "ext-first"
    assert row.locator(".verdict-summary").inner_text() == "Overall: B · Helpful: B · Honest: tie"
    other = page.locator("#my-judgments tbody tr").filter(has_text="ext-second")
    assert other.locator(".verdict-summary").inner_text() == "Overall: A · Helpful: n.a. · Honest: A"
    skipped = page.locator(f'#my-skipped tr[data-assignment="{world["skipped"]}"]')
    assert skipped.locator(".ext-id").inner_text() == "ext-skip"
    assert skipped.locator(".skip-reason").inner_text() == "I cannot read <b>this</b> language"  # as text
    shots(page, "my-judgments")

    skipped.get_by_role("button", name="Re-open").click()
    page.wait_for_url(f"{base}/projects/mine/annotate")
    page.wait_for_selector("#judge-form")
    assert page.get_attribute("#annotate-panel", "data-item") == str(world["skipped_item"])
    with db.session(write=False) as s:
        assignment = s.get(Assignment, world["skipped"])
        assert assignment is not None and assignment.status == "leased" and assignment.skip_reason is None
    page.goto(f"{base}/projects/mine/judgments")
    assert page.locator("#my-skipped").count() == 0


def _pick(page: Any, dim: str, value: str) -> None:
    page.locator(f'input[name="{dim}"][value="{value}"]').check()


def test_a_stale_edit_shows_both_versions_and_applies_mine(
    page: Any, signed_in: Any, db: Database, shots: Any, playwright_browser: Any
) -> None:
    world = _world(db)
    edit = f"/projects/mine/judgments/{world['judgment']}"
    other_context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other = other_context.new_page()
        base = signed_in(page, "annie")
        signed_in(other, "annie")
        page.goto(base + edit)
        other.goto(base + edit)
        # The other tab saves first: overall A.
        _pick(other, "overall", "A")
        other.click("#submit-btn")
        other.wait_for_url(f"{base}/projects/mine/judgments?saved={world['judgment']}")
        # This tab still edits version 1: overall tie, helpful A, and a reason.
        _pick(page, "overall", "tie")
        _pick(page, "helpful", "A")
        page.fill("#reason", "mine: they are equally good")
        page.click("#submit-btn")
        page.wait_for_selector("#edit-conflict")
        stored = page.locator(".conflict-stored .verdict-summary").inner_text()
        assert stored == "Overall: A · Helpful: B · Honest: tie"
        assert page.locator(".conflict-mine .verdict-summary").inner_text() == "Overall: tie · Helpful: A · Honest: tie"
        # My edit is still in the form, nothing of it stored
        assert page.locator('input[name="overall"][value="tie"]').is_checked()
        assert page.locator('input[name="helpful"][value="A"]').is_checked()
        assert page.input_value("#reason") == "mine: they are equally good"
        with db.session(write=False) as s:
            judgment = s.get(Judgment, world["judgment"])
            assert judgment is not None and judgment.version == 2 and judgment.reason == ""
        shots(page, "edit-conflict")

        page.click("#apply-mine")
        page.wait_for_url(f"{base}/projects/mine/judgments?saved={world['judgment']}")
        with db.session(write=False) as s:
            judgment = s.get(Judgment, world["judgment"])
            assert judgment is not None and judgment.version == 3
            assert judgment.reason == "mine: they are equally good"
            verdicts = verdicts_of(s, [judgment.id])[judgment.id]
        assert verdicts["overall"].kind == "tie" and verdicts["helpful"].kind == "preference"
        # The saved edit's draft is gone: reopening the judgment shows what is stored, and sends nothing.
        page.goto(base + edit)
        page.wait_for_load_state("networkidle")
        assert page.locator('input[name="overall"][value="tie"]').is_checked()
        with db.session(write=False) as s:
            judgment = s.get(Judgment, world["judgment"])
            assert judgment is not None and judgment.version == 3
    finally:
        other_context.close()


def test_discarding_a_stale_edit_reloads_the_stored_version(
    page: Any, signed_in: Any, db: Database, playwright_browser: Any
) -> None:
    world = _world(db)
    edit = f"/projects/mine/judgments/{world['judgment']}"
    other_context = playwright_browser.new_context()
    try:
        other = other_context.new_page()
        base = signed_in(page, "annie")
        signed_in(other, "annie")
        page.goto(base + edit)
        other.goto(base + edit)
        _pick(other, "overall", "A")
        other.click("#submit-btn")
        other.wait_for_url(f"{base}/projects/mine/judgments?saved={world['judgment']}")
        _pick(page, "overall", "tie")
        page.fill("#reason", "to be thrown away")
        page.click("#submit-btn")
        page.wait_for_selector("#edit-conflict")
        page.click("#discard-mine")
        page.wait_for_url(base + edit)
        page.wait_for_load_state("networkidle")
        assert page.locator('input[name="overall"][value="A"]').is_checked()
        assert page.input_value("#reason") == ""
        assert page.locator("#edit-conflict").count() == 0
        with db.session(write=False) as s:
            judgment = s.get(Judgment, world["judgment"])
            assert judgment is not None and judgment.version == 2 and judgment.reason == ""
    finally:
        other_context.close()
