"""Import batches in Chromium: two files imported on the project page, then the explorer filtered by the first
batch shows only its items, and the item page links back to its batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.db import Database
from app.models import ImportBatch, Item
from tests.factories import make_project, make_user


def _rows(page: Any) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all("tr[data-item]", "rows => rows.map(r => r.dataset.item)")]


def _upload(page: Any, path: Path) -> str:
    """Import ``path`` with the project page's form; the link to the import batch it shows."""
    before = page.get_attribute("#import-batch", "href") if page.query_selector("#import-batch") else None
    page.set_input_files("#import input[name=file]", str(path))
    page.click("#import button[type=submit]")
    page.wait_for_function(
        "old => { const a = document.querySelector('#import-batch'); return a && a.getAttribute('href') !== old }",
        arg=before,
    )
    return str(page.get_attribute("#import-batch", "href"))


def test_filter_the_explorer_by_the_first_import(
    page: Any, signed_in: Any, db: Database, shots: Any, tmp_path: Path
) -> None:
    with db.session() as s:
        make_user(s, "batcher", role="admin")
        make_project(s, "batchzoo", name="Batch zoo", k=2)
        s.commit()
    first, second = tmp_path / "animals.jsonl", tmp_path / "rivers.csv"
    first.write_text("".join(json.dumps({"prompt": f"Animal question {i}"}) + "\n" for i in range(4)))
    second.write_text("prompt\n" + "".join(f"River question {i}\n" for i in range(3)) + "Animal question 0\n")

    base = signed_in(page, "batcher")
    page.goto(f"{base}/projects/batchzoo")
    links = [_upload(page, first)]
    shots(page, "import-batch-result")
    links.append(_upload(page, second))
    with db.session(write=False) as s:
        batches = list(s.scalars(select(ImportBatch).order_by(ImportBatch.id)))
        by_batch = {b.id: sorted(s.scalars(select(Item.id).where(Item.import_batch_id == b.id)).all()) for b in batches}
    assert [(b.filename, b.added, b.duplicates) for b in batches] == [("animals.jsonl", 4, 0), ("rivers.csv", 3, 1)]
    older, newer = batches
    assert links == [f"/projects/batchzoo/items?batch={b.id}" for b in batches]

    page.goto(f"{base}/projects/batchzoo/items")
    assert len(_rows(page)) == 7
    labels = page.eval_on_selector_all("#f-batch option", "os => os.map(o => o.textContent.trim())")
    assert labels[1].startswith(f"#{newer.id} · rivers.csv") and labels[2].startswith(f"#{older.id} · animals.jsonl")
    assert labels[2].endswith("4 items")
    page.select_option("#f-batch", str(older.id))
    page.click("#filters button[type=submit]")
    page.wait_for_url(f"**/projects/batchzoo/items?*batch={older.id}*")
    assert _rows(page) == by_batch[older.id]
    assert "River" not in page.inner_text(".explorer-table")
    assert page.input_value("#f-batch") == str(older.id)
    assert "animals.jsonl" in page.inner_text("#batch-chosen")
    shots(page, "explorer-batch")

    page.click(f"tr[data-item='{by_batch[older.id][0]}'] a")
    page.wait_for_selector("#item-batch")
    assert "animals.jsonl" in page.inner_text("#item-batch")
    shots(page, "item-batch")
    page.click("#item-batch a")
    page.wait_for_url(f"**/projects/batchzoo/items?batch={older.id}")
    assert _rows(page) == by_batch[older.id]
