"""Progress on the annotation page: the fair-share target counts only the members who annotate."""

from __future__ import annotations

import math
import re
from typing import Any

from app.db import Database
from tests.factories import make_items, make_project, make_user

ITEMS, OVERLAP = 6, 1


def _judged_by_me(page: Any) -> tuple[int, int]:
    text = page.locator("#annotate-panel .progressline span").first.inner_text()
    found = re.search(r"(\d+)\s*/\s*(\d+)", text)
    assert found, text
    return int(found.group(1)), int(found.group(2))


def test_an_admin_member_who_never_judges_does_not_shrink_the_target(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    """An admin runs the project as a member beside two annotators and judges nothing: an annotator's target
    is the project's judgments over the two annotators (the admin counted too, a page said "Judged by me 7 / 6",
    the annotator past their share with work still to do)."""
    with db.session() as s:
        annotators = [make_user(s, f"share{i}") for i in range(2)]
        admin = make_user(s, "share-boss", role="admin")
        project = make_project(s, "share", k=2, overlap=OVERLAP, members=[*annotators, admin], gold_share=0.0)
        make_items(s, project, ITEMS)
        s.commit()
    expected_target = math.ceil(ITEMS * OVERLAP / len(annotators))  # the admin member judged nothing

    base = signed_in(page, "share0")
    page.goto(f"{base}/projects/share/annotate")
    page.wait_for_selector("#annotate-panel[data-item]")
    assert _judged_by_me(page) == (0, expected_target)
    item = page.locator("#annotate-panel").get_attribute("data-item")
    page.keyboard.press("a")  # overall: A
    page.keyboard.press("=")  # the same on every dimension
    page.keyboard.press("Enter")
    page.wait_for_function(
        "prev => { const p = document.getElementById('annotate-panel'); return p && p.dataset.item !== prev; }",
        arg=item,
    )
    assert _judged_by_me(page) == (1, expected_target)
    shots(page, "progress-fair-share")

    page.goto(f"{base}/projects")
    card = page.locator("main").inner_text()
    assert re.search(rf"1\s*/\s*{expected_target}\b", card), card
