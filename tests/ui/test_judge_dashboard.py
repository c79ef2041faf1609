"""The agreement page in Chromium with a judge: the "Judge vs people" section with κ, its n and the anchoring
effect, and the judge's row in the annotator table, marked and without a pause button."""

from __future__ import annotations

from typing import Any

from app.db import Database
from tests.agreement.test_judge_agreement import DIMS, JUDGE, suggest, vote
from tests.factories import make_items, make_project, make_user


def test_the_dashboard_shows_the_judge_section_and_its_marked_row(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    with db.session() as s:
        users = [make_user(s, name) for name in ("ann", "bea", "cy")]
        make_user(s, "boss", role="admin")
        project = make_project(s, "trust", k=2, overlap=3, members=users, dimensions=DIMS)
        project.judge = {"judges": [{"model": "big-model", "base_url": "http://judge:8000/v1"}]}
        for n, item in enumerate(make_items(s, project, 12)):
            winner = n % 2
            suggest(s, item, "preference", winner)
            for m, user in enumerate(users):
                # Shown on the first six items: everyone follows the judge; hidden: cy disagrees.
                chosen = winner if n < 6 or m < 2 else 1 - winner
                vote(s, item, user, chosen, shown=n < 6)
        s.commit()

    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/trust/agreement")
    section = page.locator("#judge-vs-people")
    section.wait_for()
    assert JUDGE in section.locator("h2").inner_text()
    overall = section.locator('tr.judge-dimension[data-dimension="overall"]')
    assert overall.locator(".judge-kappa").inner_text().startswith("1.00")  # the judge is the majority everywhere
    assert "12" in overall.inner_text()  # n: the 12 overall pairs
    difference = page.locator("#anchoring .anchoring-difference").first.inner_text()
    assert difference.startswith("+33.3")  # 100 % shown against 2/3 hidden
    row = page.locator("tr.judge-row")
    assert row.count() == 1
    assert row.locator(".badge").inner_text().strip() == "judge"
    assert f"judge: {JUDGE}" in row.inner_text()
    assert row.locator("form").count() == 0  # a model is not paused like a person
    shots(page, "agreement-judge-vs-people")
