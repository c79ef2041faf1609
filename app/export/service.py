"""The export preview: how many pairs a filter keeps and what each rule drops, without writing anything."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.orm import Session

from app.export.filters import Rules, resolve
from app.export.rows import pair_rows
from app.export.schemas import DROP_REASONS, ExportFilter, PreviewOut
from app.models import Project


def preview(
    session: Session, *, project: Project, filters: ExportFilter, key: bytes, by_admin: bool = False
) -> PreviewOut:
    """How many pairs the filter keeps, and what each rule drops — without writing anything."""
    rules = resolve(session, project=project, filters=filters, key=key, by_admin=by_admin)
    drops: Counter[str] = Counter()
    for _ in pair_rows(session, rules=rules, drops=drops):
        pass
    return preview_from(drops, rules)


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
