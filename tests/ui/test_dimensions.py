"""Dimensions in Chromium: labels and descriptions in the annotator's language with the project's own text as the
fallback (10), and optional dimensions that a judgment may leave blank (16); the admin sets both on the project
form."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.models import Judgment, Project, Verdict
from tests.factories import make_items, make_project, make_user

DIMS = [
    {
        "key": "helpful",
        "label": "Helpful",
        "description": "Answers the request.",
        "labels": {"zh_Hans": {"label": "有帮助", "description": "完整地回答了请求。"}},
    },
    {"key": "honest", "label": "Honest", "description": "No invented facts."},  # no Chinese text: falls back
    {"key": "style", "label": "Style", "description": "Reads well.", "required": False},
]


def _project(db: Database, *, language: str | None = None) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
        user.language = language
        project = make_project(s, "dims", k=2, overlap=1, members=[user], dimensions=DIMS, gold_share=0)
        make_items(s, project, 3)
        s.commit()


def _rows(page: Any) -> dict[str, tuple[str, str]]:
    out = {}
    for row in page.locator("#judge-form .dim-row").all():
        desc = row.locator(".dim-desc")
        out[str(row.get_attribute("data-dim"))] = (
            row.locator(".dim-label").inner_text(),
            desc.inner_text() if desc.count() else "",
        )
    return out


def test_a_chinese_annotator_sees_the_chinese_labels_and_falls_back_to_the_project_text(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    _project(db, language="zh")
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects/dims/annotate")
    page.wait_for_selector("#judge-form")
    rows = _rows(page)
    assert rows["helpful"] == ("有帮助", "完整地回答了请求。")
    assert rows["honest"] == ("Honest", "No invented facts.")  # no zh_Hans text: the project's own
    assert rows["style"][0] == "Style"
    assert "有帮助" in str(page.locator("dl.dims").text_content())  # the guidelines' list too
    shots(page, "dimensions-zh")


def test_an_english_annotator_sees_the_project_text(page: Any, signed_in: Any, db: Database) -> None:
    _project(db)
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects/dims/annotate")
    page.wait_for_selector("#judge-form")
    rows = _rows(page)
    assert rows["helpful"] == ("Helpful", "Answers the request.")
    assert rows["honest"] == ("Honest", "No invented facts.")


def _judgments(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Judgment)) or 0)


def test_an_optional_dimension_left_blank_submits_and_a_required_one_does_not(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    _project(db)
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects/dims/annotate")
    page.wait_for_selector("#judge-form")
    style = page.locator('.dim-row[data-dim="style"]')
    assert style.get_attribute("data-optional") == "1" and style.locator(".dim-optional").is_visible()
    assert page.locator('.dim-row[data-dim="helpful"]').get_attribute("data-optional") is None
    shots(page, "dimensions-optional")

    # A required dimension (honest) left blank: the server refuses it, nothing is stored.
    item = page.get_attribute("#annotate-panel", "data-item")
    for dim, value in (("overall", "A"), ("helpful", "B"), ("style", "A")):
        page.locator(f'input[name="{dim}"][value="{value}"]').check()
    page.click("#submit-btn")
    page.wait_for_load_state("networkidle")
    assert _judgments(db) == 0 and page.get_attribute("#annotate-panel", "data-item") == item

    # The optional one (style) left blank: stored without it.
    page.evaluate("document.querySelectorAll('input[name=style]').forEach(i => { i.checked = false; })")
    page.locator('input[name="honest"][value="tie"]').check()
    page.click("#submit-btn")
    page.wait_for_function("before => document.getElementById('annotate-panel').dataset.item !== before", arg=item)
    assert _judgments(db) == 1
    with db.session(write=False) as s:
        assert sorted(s.scalars(select(Verdict.dimension))) == ["helpful", "honest", "overall"]


def test_the_admin_writes_chinese_text_and_marks_a_dimension_optional(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    with db.session() as s:
        make_user(s, "root", role="admin")
        make_project(s, "form", dimensions=[dict(d) for d in DIMS[:2]])
        s.commit()
    base = signed_in(page, "root")
    page.goto(f"{base}/projects/form/edit")
    page.fill('[name="dimension-1-label@zh_Hans"]', "诚实")
    page.fill('[name="dimension-1-description@zh_Hans"]', "不编造事实。")
    page.select_option('[name="dimension-1-required"]', "0")
    assert page.input_value('[name="dimension-0-label@zh_Hans"]') == "有帮助"  # stored text comes back
    shots(page, "dimensions-project-form")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{base}/projects/form")
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == "form"))
        assert project is not None
        honest = next(d for d in project.dimensions if d["key"] == "honest")
        helpful = next(d for d in project.dimensions if d["key"] == "helpful")
    assert honest["required"] is False
    assert honest["labels"] == {"zh_Hans": {"label": "诚实", "description": "不编造事实。"}}
    assert helpful.get("required", True) is True and helpful["labels"]["zh_Hans"]["label"] == "有帮助"
