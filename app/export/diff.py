"""Two snapshots of a project compared pair by pair: which pairs were added, removed, flipped or kept.

A pair is (item id, its two candidate ids, dimension); flipped means the same pair exported the other way round.
Both files are streamed: the older one's pairs are held as small tuples (direction, the line's offset and the few
meta fields counted), the newer one is read against them, and only the first changed pairs are read whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.config import Settings
from app.export.snapshots import project_snapshot, snapshot_path
from app.kit.errors import Invalid
from app.models import Project, Snapshot

CHANGED_LISTED = 50  # changed pairs a diff lists (all are counted)
PROMPT_CHARS = 200
CHANGES = ("added", "removed", "flipped")

PairKey = tuple[int, int, int, str]  # item id, the lower and the higher candidate id, dimension


class ChangedPair(BaseModel):
    """A pair that differs: in the newer snapshot only (added), in the older only (removed), or reversed."""

    change: Literal["added", "removed", "flipped"]
    item_id: int
    external_id: str | None
    dimension: str
    prompt: str = Field(description=f"the prompt as plain text, cut at {PROMPT_CHARS} characters")
    chosen_candidate_id: int = Field(description="as exported by the newer snapshot (the older one for removed)")
    rejected_candidate_id: int


class SnapshotDiff(BaseModel):
    """How the pairs of snapshot ``to`` differ from those of snapshot ``from``."""

    project: str
    from_snapshot: int
    to_snapshot: int
    from_rows: int
    to_rows: int
    counts: dict[str, int] = Field(description="added, removed, flipped and unchanged pairs")
    by_reason: dict[str, dict[str, int]] = Field(
        description="per change, the changed pairs by what their rows say: item (new, gone or in both), "
        "adjudicated, label_source, margin"
    )
    filters_changed: dict[str, list[Any]] = Field(description="filter fields that differ: [from, to]")
    changed: list[ChangedPair] = Field(description="the first changed pairs, in the newer file's order")
    truncated: bool


class _Old:
    """What is kept of a pair of the older file: its direction, where its line starts, the meta counted."""

    __slots__ = ("chosen", "offset", "reasons")

    def __init__(self, chosen: int, offset: int, reasons: tuple[str, ...]) -> None:
        self.chosen, self.offset, self.reasons = chosen, offset, reasons


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, row) of each line of a snapshot file."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            yield offset, orjson.loads(line)
            offset += len(line)


def _key(meta: dict[str, Any]) -> tuple[PairKey, int]:
    chosen, rejected = int(meta["chosen_candidate_id"]), int(meta["rejected_candidate_id"])
    pair = (int(meta["item_id"]), min(chosen, rejected), max(chosen, rejected), str(meta.get("dimension") or ""))
    return pair, chosen


def _reasons(meta: dict[str, Any]) -> tuple[str, ...]:
    """The fields of a row a change is counted by (those its rows carry)."""
    out = [f"adjudicated={'yes' if meta.get('adjudicated') else 'no'}", f"margin={meta.get('margin')}"]
    if "label_source" in meta:
        out.append(f"label_source={meta['label_source']}")
    return tuple(out)


def prompt_text(value: Any) -> str:
    """A row's prompt as plain text (chat messages as "role: content"), cut short."""
    if isinstance(value, list):
        value = "\n\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in value if isinstance(m, dict))
    text = str(value)
    return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS].rstrip() + " …"


def _changed(change: str, row: dict[str, Any]) -> ChangedPair:
    meta = row["meta"]
    return ChangedPair(
        change=change,
        item_id=meta["item_id"],
        external_id=meta.get("external_id"),
        dimension=str(meta.get("dimension") or ""),
        prompt=prompt_text(row.get("prompt")),
        chosen_candidate_id=meta["chosen_candidate_id"],
        rejected_candidate_id=meta["rejected_candidate_id"],
    )


def ready_snapshot(session: Session, *, project: Project, snapshot_id: int, settings: Settings) -> Snapshot:
    """A snapshot of ``project`` whose file can be read (404 for another project's, 422 while it is not ready)."""
    snapshot = project_snapshot(session, project=project, snapshot_id=snapshot_id)
    if snapshot.state != "ready":
        raise Invalid(f"Snapshot {snapshot.id} is {snapshot.state}: only ready snapshots can be compared")
    snapshot_path(snapshot, settings)  # its file is there and whole
    return snapshot


def diff_snapshots(
    session: Session, *, project: Project, from_id: int, to_id: int, settings: Settings, limit: int = CHANGED_LISTED
) -> SnapshotDiff:
    """Compare two ready snapshots of ``project`` pair by pair, streaming both files."""
    if from_id == to_id:
        raise Invalid("Choose two different snapshots to compare")
    old = ready_snapshot(session, project=project, snapshot_id=from_id, settings=settings)
    new = ready_snapshot(session, project=project, snapshot_id=to_id, settings=settings)
    old_path, new_path = snapshot_path(old, settings), snapshot_path(new, settings)
    before: dict[PairKey, _Old] = {}
    old_items: set[int] = set()
    for offset, row in _lines(old_path):
        pair, chosen = _key(row["meta"])
        before[pair] = _Old(chosen, offset, _reasons(row["meta"]))
        old_items.add(pair[0])
    counts: Counter[str] = Counter()
    by_reason: dict[str, Counter[str]] = {change: Counter() for change in CHANGES}
    changed: list[ChangedPair] = []
    new_items: set[int] = set()
    for _, row in _lines(new_path):
        pair, chosen = _key(row["meta"])
        new_items.add(pair[0])
        seen = before.pop(pair, None)
        change = "added" if seen is None else "unchanged" if seen.chosen == chosen else "flipped"
        counts[change] += 1
        if change == "unchanged":
            continue
        item = "item=both" if pair[0] in old_items else "item=new"
        by_reason[change].update((item, *_reasons(row["meta"])))
        if len(changed) < limit:
            changed.append(_changed(change, row))
    counts["removed"] = len(before)
    removed = sorted(before.values(), key=lambda o: o.offset)
    for pair, gone in before.items():
        by_reason["removed"].update(("item=both" if pair[0] in new_items else "item=gone", *gone.reasons))
    changed += _removed_rows(old_path, [o.offset for o in removed[: max(0, limit - len(changed))]])
    return SnapshotDiff(
        project=project.slug,
        from_snapshot=old.id,
        to_snapshot=new.id,
        from_rows=old.row_count,
        to_rows=new.row_count,
        counts={c: counts[c] for c in (*CHANGES, "unchanged")},
        by_reason={change: dict(sorted(by_reason[change].items())) for change in CHANGES},
        filters_changed=_filters_changed(old.filters or {}, new.filters or {}),
        changed=changed,
        truncated=counts["added"] + counts["removed"] + counts["flipped"] > len(changed),
    )


def _removed_rows(path: Path, offsets: list[int]) -> list[ChangedPair]:
    """The removed pairs at these offsets of the older file, read whole."""
    out: list[ChangedPair] = []
    with open(path, "rb") as f:
        for offset in offsets:
            f.seek(offset)
            out.append(_changed("removed", orjson.loads(f.readline())))
    return out


def _filters_changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """The filter fields whose values differ (a field one side lacks is None there)."""
    return {key: [old.get(key), new.get(key)] for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}

