"""The export preview: how many pairs a filter keeps and what each rule drops, without writing anything."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from pydantic import Field
from sqlalchemy.orm import Session

from app.export.filters import Rules, resolve
from app.export.rows import pair_rows
from app.export.schemas import DROP_REASONS, ExportFilter, PreviewOut
from app.models import Project

SAMPLES = 5  # pairs the preview shows under its counts
SAMPLE_CHARS = 400  # of each text shown


class PreviewWithSamples(PreviewOut):
    """The preview and a few of the pairs it keeps, for the page only (never in the JSON answer)."""

    samples: list[dict[str, Any]] = Field(default_factory=list, exclude=True)


def preview(
    session: Session, *, project: Project, filters: ExportFilter, key: bytes, by_admin: bool = False
) -> PreviewWithSamples:
    """How many pairs the filter keeps, and what each rule drops — without writing anything; with the first
    ``SAMPLES`` pairs kept, as the export writes them."""
    rules = resolve(session, project=project, filters=filters, key=key, by_admin=by_admin)
    drops: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    for row in pair_rows(session, rules=rules, drops=drops):
        if len(samples) < SAMPLES:
            samples.append(sample_of(orjson.loads(orjson.dumps(row))))  # stored JSON is embedded as fragments
    return PreviewWithSamples(**preview_from(drops, rules).model_dump(), samples=samples)


def _text(value: Any) -> str:
    """A prompt or answer as plain text: a string as it is, chat messages as "role: content" turns."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        turns = [m for m in value if isinstance(m, dict)]
        if len(turns) == 1 and turns[0].get("role") == "assistant":
            return str(turns[0].get("content", ""))
        return "\n\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in turns)
    return str(value)


def _clip(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS].rstrip() + " …"


def sample_of(row: dict[str, Any]) -> dict[str, Any]:
    """One exported pair as the preview shows it: texts cut short, the votes and the margin."""
    meta = row.get("meta") or {}
    return {
        "item_id": meta.get("item_id"),
        "external_id": meta.get("external_id"),
        "prompt": _clip(_text(row.get("prompt"))),
        "chosen": _clip(_text(row.get("chosen"))),
        "rejected": _clip(_text(row.get("rejected"))),
        "votes": meta.get("votes") or {},
        "margin": meta.get("margin"),
        "adjudicated": bool(meta.get("adjudicated")),
    }


def preview_from(drops: Counter[str], rules: Rules) -> PreviewOut:
    """The preview of an export that has run, from what it counted."""
    return PreviewOut(
        items=drops["_items"],
        judged_items=drops["_judged_items"],
        candidate_pairs=drops["_candidate_pairs"],
        dropped={reason: drops[reason] for reason in DROP_REASONS},
        kept=drops["_kept"],
        adjudicated=drops["_adjudicated"],
        by_split={"train": drops["_split_train"], "test": drops["_split_test"]},
        excluded_annotators=rules.excluded_pseudonyms,
    )
