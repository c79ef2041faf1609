"""The agreement page in Chromium: α is the headline with Fleiss' κ's coverage beside it, and an annotator pair
below the project's minimum of shared items is greyed, listed without a κ."""

from __future__ import annotations

from typing import Any

from app.db import Database
from tests.factories import make_items, make_judgment, make_project, make_user


def test_alpha_is_the_headline_and_a_pair_below_the_minimum_is_greyed(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    with db.session() as s:
        a, b, c = (make_user(s, name) for name in ("ann", "bea", "cy"))
        make_user(s, "boss", role="admin")
        project = make_project(s, "agree", k=4, overlap=3, members=[a, b, c])
        items = make_items(s, project, 24)
        for n, item in enumerate(items):
            planted = ("preference", 0, 3) if n % 2 else ("preference", 3, 0)
            for user in (a, b):
                make_judgment(s, item, user, {"overall": planted})
            if n < 8:  # cy shares 8 items with each: fewer than 20
                make_judgment(s, item, c, {"overall": ("preference", 1, 3)})
        s.commit()

    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/agree/agreement")
    table = page.locator("#agreement-dimensions")
    table.wait_for()
    headers = table.locator("thead th").all_inner_texts()
    assert headers.index("Krippendorff α") < headers.index("Fleiss κ")  # α first: the headline
    overall = table.locator("tbody tr").first
    # 24 items × 5 pairs with two ratings or more; 4 pairs of each of cy's 8 items have all three.
    assert "on 27% of pairs" in overall.locator(".fleiss-coverage").inner_text()
    assert "Fleiss' κ only the pairs rated by exactly 3 annotators" in page.locator(".units-covered").inner_text()

    below = page.locator('#agreement-cohen td.below-minimum[data-pair="ann|cy"]').first
    assert below.inner_text().strip() == "8"  # the shared items, no κ claimed
    assert "fewer than 20: no κ" in (below.get_attribute("title") or "")
    grey = below.evaluate("td => getComputedStyle(td).color")
    claimed = page.locator('#agreement-cohen td[data-pair="ann|bea"]').first
    assert claimed.inner_text().startswith("1.00")
    assert grey != claimed.evaluate("td => getComputedStyle(td).color")  # greyed, unlike a claimed κ
    shots(page, "agreement-alpha-headline-greyed-pair")
