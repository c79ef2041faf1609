"""The preview's sample pairs: the first few kept pairs as the export writes them, for the page only."""

from __future__ import annotations

from app.db import Database
from app.export import service
from app.export.schemas import ExportFilter, PreviewOut
from tests.factories import make_item, make_judgment, make_project, make_user


def test_the_preview_carries_a_handful_of_kept_pairs_as_text(db: Database) -> None:
    with db.session() as s:
        a = make_user(s, "a")
        project = make_project(s, "p", members=[a])
        for i in range(7):
            item = make_item(
                s, project, [{"role": "user", "content": f"chat prompt {i}"}], candidates=["x" * 1000, "y"]
            )
            make_judgment(s, item, a, {"overall": ("preference", 1, 0)})
        found = service.preview(s, project=project, filters=ExportFilter(format="conversational"), key=b"k")
    assert found.kept == 7 and len(found.samples) == service.SAMPLES
    first = found.samples[0]
    assert first["prompt"] == "user: chat prompt 0"  # chat turns as text
    assert first["chosen"] == "y" and first["rejected"].endswith(" …")  # cut short
    assert len(first["rejected"]) <= service.SAMPLE_CHARS + 2
    assert first["votes"] == {"chosen": 1, "rejected": 0, "tie": 0}
    # The JSON answer stays what it was: no texts in it.
    assert "samples" not in found.model_dump() and set(found.model_dump()) == set(PreviewOut.model_fields)
