"""The export preview shows a few of the pairs it keeps under the counts, and its drop rules by readable names."""

from __future__ import annotations

from typing import Any

from app.db import Database
from tests.factories import make_item, make_judgment, make_project, make_user

HOSTILE = "<img src=x onerror=alert(1)> & **bold**"


def _setup(db: Database) -> None:
    with db.session() as s:
        boss = make_user(s, "boss", role="admin")
        a, b = make_user(s, "ann-a"), make_user(s, "ann-b")
        project = make_project(s, "exp", members=[boss, a, b])
        for i in range(8):  # eight items with a clear winner: candidate 0 beats candidate 1 twice
            item = make_item(s, project, f"Prompt {i}: {HOSTILE}", candidates=[f"good answer {i}", f"bad answer {i}"])
            for who in (a, b):
                make_judgment(s, item, who, {"overall": ("preference", 0, 1)})
        tied = make_item(s, project, "A tied prompt", candidates=["left", "right"])
        make_judgment(s, tied, a, {"overall": ("preference", 0, 1)})
        make_judgment(s, tied, b, {"overall": ("preference", 1, 0)})
        s.commit()


def test_the_preview_shows_sample_pairs_under_the_counts(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/exp/export")
    kept = int(page.locator("#preview tr.kept td").inner_text())
    assert kept == 8
    samples = page.locator("#preview .export-sample")
    assert samples.count() == 5  # a handful, not all eight
    first = samples.first
    assert "good answer 0" in first.locator(".sample-chosen").inner_text()
    assert "bad answer 0" in first.locator(".sample-rejected").inner_text()
    assert HOSTILE in first.locator(".sample-prompt").inner_text()  # shown as text
    assert page.locator("#preview .export-sample img").count() == 0  # never as markup
    # Below the funnel: the table comes first, then the samples.
    funnel_bottom = page.locator("#preview table.funnel").bounding_box()
    assert funnel_bottom is not None and first.bounding_box()["y"] > funnel_bottom["y"]  # type: ignore[index]
    shots(page, "export-preview-samples")


def test_drop_rules_read_as_words(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/exp/export?applied=1&dimension=overall&min_margin=2&min_judgments=2&veto=helpful")
    funnel = page.locator("#preview table.funnel")
    margin = funnel.locator("tr[data-reason=margin] th").inner_text()
    assert "margin below 2 votes" in margin
    assert "fewer judgments than 2" in funnel.locator("tr[data-reason=min_judgments] th").inner_text()
    assert "tie on overall" in funnel.locator("tr[data-reason=tie] th").inner_text()
    assert "no majority" in funnel.locator("tr[data-reason=no_majority] th").inner_text()
    assert "helpful" in funnel.locator("tr[data-reason=veto] th").inner_text()
    text = funnel.inner_text()
    for rule_id in ("min_judgments", "no_majority", "margin", "tie", "share", "identical"):  # no bare ids
        assert f"− {rule_id}\t" not in text
    shots(page, "export-preview-drop-rules")
