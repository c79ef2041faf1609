"""The data explorer in Chromium: text search, filters, keyset pages, the item page's full history, and a bulk
"exclude from export" that changes what the export contains."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.db import Database
from app.models import Adjudication, Assignment, Candidate, Item, utcnow
from tests.factories import make_item, make_judgment, make_project, make_user

PREF = "preference"


def _world(db: Database) -> dict[str, Any]:
    with db.session() as s:
        admin = make_user(s, "chief", role="admin")
        anns = [make_user(s, f"ann{i}") for i in range(3)]
        project = make_project(s, "zoo", name="Zoo", k=2, overlap=3, members=anns)
        filler = [make_item(s, project, f"Question number {i} about rivers") for i in range(54)]
        walrus = make_item(
            s, project, "Why does the walrus have tusks?", candidates=["For fighting.", "To haul out on ice."]
        )
        for n, a in enumerate(anns):  # 2 against 1: a split vote, both sides with reasons
            j = make_judgment(
                s, walrus, a, {"overall": (PREF, 1, 0) if n else (PREF, 0, 1)}, reason=f"reason of {a.username}"
            )
            j.seconds = 12.5 + n
        for item in filler[:5]:  # unanimous
            for a in anns:
                make_judgment(s, item, a, {"overall": (PREF, 0, 1)})
        s.add(
            Assignment(
                project_id=project.id,
                item_id=walrus.id,
                annotator_id=admin.id,
                status="skipped",
                display_order=[],
                lease_expires_at=utcnow(),
                skip_reason="not sure about walruses",
            )
        )
        cands = list(s.scalars(select(Candidate).where(Candidate.item_id == walrus.id).order_by(Candidate.position)))
        s.add(
            Adjudication(
                project_id=project.id,
                item_id=walrus.id,
                round=0,
                decided_by_id=admin.id,
                reason="hauling out is the main use",
                verdicts={"overall": {"kind": PREF, "chosen": cands[1].id, "rejected": cands[0].id}},
            )
        )
        cands[1].params = {"temperature": 0.7, "top_p": 0.95}
        cands[1].seed = 4242
        s.commit()
        return {"walrus": walrus.id, "first": filler[0].id}


def _rows(page: Any) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all("tr[data-item]", "rows => rows.map(r => r.dataset.item)")]


def _export_prompts(page: Any, base: str) -> list[str]:
    response = page.request.get(f"{base}/api/v1/projects/zoo/export.jsonl")
    assert response.ok, response.text()
    return [json.loads(line)["prompt"] for line in response.text().splitlines() if line.strip()]


def test_search_filter_page_and_exclude_from_export(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    world = _world(db)
    base = signed_in(page, "chief")
    page.goto(f"{base}/projects/zoo")
    page.click("text=Data explorer")
    page.wait_for_url(f"{base}/projects/zoo/items")
    first = _rows(page)
    assert len(first) == 50
    page.click("#next-page")  # keyset: the rest, none twice
    page.wait_for_selector("tr[data-item]")
    second = _rows(page)
    assert second and not set(second) & set(first) and min(second) > max(first)
    assert "#next-page" not in page.content() and len(first) + len(second) == 55

    page.goto(f"{base}/projects/zoo/items")
    page.fill("#f-q", "walrus tusks")
    page.click("button:has-text('Find')")
    page.wait_for_url("**/items?*q=walrus*")
    assert _rows(page) == [world["walrus"]]
    page.fill("#f-q", "haul out", timeout=2000)
    page.select_option("#f-match", "substring")
    page.click("button:has-text('Find')")
    page.wait_for_url("**match=substring*")
    assert _rows(page) == [world["walrus"]]  # an answer's text
    page.goto(f"{base}/projects/zoo/items")
    page.select_option("#f-split", "1")
    page.click("button:has-text('Find')")
    page.wait_for_url("**split=1*")
    assert _rows(page) == [world["walrus"]]  # the only split vote
    page.select_option("#f-split", "")
    page.fill("#f-skip_reason", "walruses")
    page.click("button:has-text('Find')")
    page.wait_for_url("**skip_reason=walruses*")
    assert _rows(page) == [world["walrus"]]
    shots(page, "explorer")

    assert "Why does the walrus have tusks?" in _export_prompts(page, base)
    page.check(f"tr[data-item='{world['walrus']}'] input[name=item]")
    page.click("button[value=exclude]")
    page.wait_for_selector("#bulk-result")
    assert "Items changed: 1." in page.inner_text("#bulk-result")
    assert page.input_value("#f-skipped") == "" and page.input_value("#f-skip_reason") == "walruses"  # filters kept
    assert "excluded" in page.inner_text(f"tr[data-item='{world['walrus']}']")
    assert "Why does the walrus have tusks?" not in _export_prompts(page, base)
    shots(page, "explorer-excluded")


def test_the_item_page_shows_the_whole_history(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    world = _world(db)
    base = signed_in(page, "chief")
    page.goto(f"{base}/projects/zoo/items?q=walrus")
    page.click(f"tr[data-item='{world['walrus']}'] a")
    page.wait_for_url(f"{base}/projects/zoo/items/{world['walrus']}")
    judgments = page.inner_text("#judgments")
    for n in range(3):
        assert f"reason of ann{n}" in judgments
    assert "1 ≻ 2" in judgments and "2 ≻ 1" in judgments
    assert "12.5" in judgments and "14.5" in judgments
    assert "not sure about walruses" in page.inner_text("#skips")
    decisions = page.inner_text("#decisions")
    assert "hauling out is the main use" in decisions and "chief" in decisions and "2 ≻ 1" in decisions
    page.click("article:has-text('To haul out') summary")
    params = page.inner_text("article:has-text('To haul out') .gen-params")
    assert "temperature=0.7" in params and "4242" in params
    shots(page, "item-history")
    with db.session() as s:
        assert s.get(Item, world["walrus"]) is not None
