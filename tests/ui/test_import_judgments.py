"""Importing judgments in Chromium: from the project page to the import page, a good file shows its count and the
item pages their judgments; a bad file shows every error with its line, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.models import Judgment
from tests.factories import make_item, make_project, make_user

HELPFUL = [{"key": "helpful", "label": "Helpful"}]


def _write(path: Path, *records: Any) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _judgments(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Judgment)) or 0)


def test_upload_a_file_see_the_count_then_a_bad_file_and_its_lines(
    page: Any, signed_in: Any, db: Database, shots: Any, tmp_path: Path
) -> None:
    with db.session() as s:
        make_user(s, "importer", role="admin")
        project = make_project(s, "oldrounds", name="Old rounds", k=2, dimensions=HELPFUL)
        for i in range(2):
            make_item(s, project, f"old prompt {i}", external_id=f"q{i}")
    good = _write(
        tmp_path / "round1.jsonl",
        *(
            {
                "item": f"q{i}",
                "annotator": name,
                "verdicts": {"overall": {"chosen": 1, "rejected": 0}, "helpful": "tie"},
            }
            for i in range(2)
            for name in ("ann", "ben")
        ),
    )
    bad = _write(
        tmp_path / "round2.jsonl",
        {"item": "q0", "annotator": "cy", "verdicts": {"overall": "tie", "helpful": "tie"}},
        {"item": "q7", "annotator": "cy", "verdicts": {"overall": "tie", "helpful": "tie"}},
        {"item": "q1", "annotator": "cy", "verdicts": {"overall": {"chosen": 0, "rejected": 3}, "helpful": "tie"}},
    )

    base = signed_in(page, "importer")
    page.goto(f"{base}/projects/oldrounds")
    page.click("#import-judgments-link")
    page.wait_for_url(f"{base}/projects/oldrounds/judgments/import")
    page.set_input_files("#import-judgments input[name=file]", str(good))
    page.click("#import-judgments button[type=submit]")
    page.wait_for_selector("#import-judgments-result")
    result = page.inner_text("#import-judgments-result")
    assert "4 judgments" in result and "of 2 items" in result and "ann, ben" in result
    shots(page, "import-judgments-result")
    assert _judgments(db) == 4

    page.set_input_files("#import-judgments input[name=file]", str(bad))
    page.click("#import-judgments button[type=submit]")
    page.wait_for_selector("#import-judgments-error")
    errors = page.eval_on_selector_all("#import-judgments .errors-list li", "items => items.map(i => i.textContent)")
    assert len(errors) == 2
    assert errors[0].startswith("line 2") and "no item with id 'q7'" in errors[0]
    assert errors[1].startswith("line 3") and "position from 0 to 1" in errors[1]
    assert "nothing was imported" in page.inner_text("#import-judgments-error")
    shots(page, "import-judgments-errors")
    assert _judgments(db) == 4
