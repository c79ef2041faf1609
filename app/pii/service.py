"""The personal-data gate of an export: what a snapshot would contain, scanned before it is frozen (a report),
and the admin's decision applied to each item while its file is written (mask, drop or accept).

What is scanned is what the file would hold: the prompt of each item with a kept pair (each message of a chat),
the candidates of its kept pairs, and the reasons the rows carry. Each text is scanned once per item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.export.filters import Rules, resolve
from app.export.rows import pair_rows
from app.export.schemas import ExportFilter
from app.kit.errors import Invalid
from app.models import Project
from app.pii.scanner import KINDS, mask, scan
from app.pii.schemas import SCANNED_FIELDS, PiiDecision, PiiHitOut, PiiItemOut, PiiReport

REPORT_ITEMS = 200  # items a report lists (the counts cover them all)


def plain(value: Any) -> Any:
    """A row value with its embedded stored JSON (``orjson.Fragment``) read back into Python values."""
    if isinstance(value, orjson.Fragment):
        return orjson.loads(orjson.dumps(value))
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def texts_of(value: Any) -> list[str]:
    """The texts of a prompt or an answer: the string, or the ``content`` of each message."""
    value = plain(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [m["content"] for m in value if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return []


def masked(value: Any) -> Any:
    """A prompt or an answer with each match replaced by its kind's placeholder."""
    value = plain(value)
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [
            {**m, "content": mask(m["content"])} if isinstance(m, dict) and isinstance(m.get("content"), str) else m
            for m in value
        ]
    return value


@dataclass
class ItemScan:
    """The matches in one item's rows."""

    item_id: int
    external_id: str | None
    hits: list[PiiHitOut] = field(default_factory=list)
    texts: int = 0


def _item_id(row: dict[str, Any]) -> Any:
    return (row.get("meta") or {}).get("item_id")


def scan_item_rows(rows: list[dict[str, Any]]) -> ItemScan:
    """Scan the rows of one item: its prompt once, each candidate once, each distinct reason once."""
    meta = rows[0].get("meta") or {}
    found = ItemScan(item_id=meta.get("item_id") or 0, external_id=meta.get("external_id"))
    fields: list[tuple[str, int | None, Any]] = [("prompt", None, rows[0].get("prompt"))]
    candidates: set[Any] = set()
    reasons: set[str] = set()
    for row in rows:
        for side in ("chosen", "rejected"):
            candidate_id = (row.get("meta") or {}).get(f"{side}_candidate_id")
            if candidate_id not in candidates:
                candidates.add(candidate_id)
                fields.append(("candidate", candidate_id, row.get(side)))
        reason = row.get("reason") or ""
        if reason and reason not in reasons:
            reasons.add(reason)
            fields.append(("reason", None, reason))
    for name, candidate_id, value in fields:
        for text in texts_of(value):
            found.texts += 1
            found.hits += [
                PiiHitOut(kind=h.kind, field=name, candidate_id=candidate_id, match=h.masked) for h in scan(text)
            ]
    return found


def by_item(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """An export's rows in groups of one item (an export makes each item's rows one after another)."""
    for _, group in groupby(rows, key=_item_id):
        yield list(group)


def scan_export(
    session: Session,
    *,
    project: Project,
    filters: ExportFilter,
    key: bytes,
    by_admin: bool = False,
    limit: int = REPORT_ITEMS,
) -> PiiReport:
    """Scan the prompts, candidates and reasons of the pairs ``filters`` keeps; list the first ``limit`` items
    with matches, and count them all."""
    rules = resolve(session, project=project, filters=filters, key=key, by_admin=by_admin)
    return scan_rules(session, rules=rules, limit=limit)


def scan_rules(session: Session, *, rules: Rules, limit: int = REPORT_ITEMS) -> PiiReport:
    """``scan_export`` for a filter already resolved."""
    counts: Counter[str] = Counter()
    items: list[PiiItemOut] = []
    scanned = texts = with_hits = 0
    for rows in by_item(pair_rows(session, rules=rules)):
        found = scan_item_rows(rows)
        scanned += 1
        texts += found.texts
        if found.hits:
            with_hits += 1
            counts.update(h.kind for h in found.hits)
            if len(items) < limit:
                items.append(PiiItemOut(item_id=found.item_id, external_id=found.external_id, hits=found.hits))
    return PiiReport(
        items_scanned=scanned,
        texts_scanned=texts,
        items_with_hits=with_hits,
        hits={kind: counts[kind] for kind in KINDS},
        items=items,
        truncated=with_hits > len(items),
    )


def refusal(report: PiiReport, decision: PiiDecision) -> str | None:
    """Why a snapshot may not be frozen with ``decision`` (None: it may): items with matches and no choice.
    Items past the report's list are unknown, so they count as undecided."""
    if decision.choice is not None:
        return None
    undecided = [item for item in report.items if item.item_id not in decision.overrides]
    if not undecided and not report.truncated:
        return None
    kinds = ", ".join(f"{kind} {n}" for kind, n in report.hits.items() if n)
    ids = ", ".join(f"#{item.item_id}" for item in undecided[:10])
    more = " …" if len(undecided) > 10 or report.truncated else ""
    return (
        f"Personal data found in {report.items_with_hits} item(s) of this export ({kinds}): {ids}{more}. "
        "Choose what the snapshot does with it: pii=mask (replace each match by a placeholder such as [EMAIL]), "
        "pii=drop (leave those items' pairs out) or pii=accept (export as is)."
    )


def check_decision(session: Session, *, rules: Rules, decision: PiiDecision) -> None:
    """Refuse (422) a snapshot whose export (``rules``: its resolved filter) has personal data that ``decision``
    does not say what to do with."""
    if decision.choice is not None:
        return
    limit = len(decision.overrides) + 10  # enough to name the undecided ones
    report = scan_rules(session, rules=rules, limit=limit)
    reason = refusal(report, decision)
    if reason is not None:
        raise Invalid(reason)


class PiiGate:
    """A snapshot file's rows through the admin's decision: each item's rows are scanned together, then kept,
    masked, or left out. Counts what it found and did, for the snapshot's filters and data card."""

    def __init__(self, decision: PiiDecision) -> None:
        self.decision = decision
        self.hits: Counter[str] = Counter()
        self.done: Counter[str] = Counter()

    def lines(self, lines: Iterable[bytes], drops: Counter[str] | None = None) -> Iterator[bytes]:
        """The JSONL lines to write: an item's lines as they are when it has no match or is accepted, masked
        (written again) or left out; a dropped item's pairs are taken off the export's tallies in ``drops``."""
        parsed = ((line, orjson.loads(line)) for line in lines)
        for _, pairs in groupby(parsed, key=lambda pair: _item_id(pair[1])):
            got = list(pairs)
            group = [row for _, row in got]
            found = scan_item_rows(group)
            self.done["items_scanned"] += 1
            self.done["texts_scanned"] += found.texts
            if not found.hits:
                yield from (line for line, _ in got)
                continue
            self.hits.update(h.kind for h in found.hits)
            self.done["items_with_hits"] += 1
            choice = self.decision.for_item(found.item_id)
            if choice is None:
                raise Invalid(
                    f"Personal data appeared in item #{found.item_id} after the snapshot was asked for; "
                    "freeze it again with pii=mask, drop or accept"
                )
            self.done[f"{choice}_items"] += 1
            if choice == "drop":
                self.done["dropped_pairs"] += len(group)
                if drops is not None:
                    _untally(drops, group)
                continue
            if choice == "mask":
                self.done["masked_matches"] += len(found.hits)
                yield from (orjson.dumps(mask_row(row), option=orjson.OPT_APPEND_NEWLINE) for row in group)
            else:
                yield from (line for line, _ in got)

    def record(self) -> dict[str, Any]:
        """What the gate found and did, as the snapshot's ``filters["pii"]`` keeps it."""
        return self.decision.stored() | {
            "scanned": list(SCANNED_FIELDS),
            "items_scanned": self.done["items_scanned"],
            "items_with_hits": self.done["items_with_hits"],
            "hits": {kind: self.hits[kind] for kind in KINDS},
            "masked_items": self.done["mask_items"],
            "masked_matches": self.done["masked_matches"],
            "dropped_items": self.done["drop_items"],
            "dropped_pairs": self.done["dropped_pairs"],
            "accepted_items": self.done["accept_items"],
        }


def mask_row(row: dict[str, Any]) -> dict[str, Any]:
    """An export row with its prompt, answers and reason masked."""
    return row | {
        "prompt": masked(row.get("prompt")),
        "chosen": masked(row.get("chosen")),
        "rejected": masked(row.get("rejected")),
        "reason": mask(row.get("reason") or ""),
    }


def _untally(drops: Counter[str], rows: list[dict[str, Any]]) -> None:
    """Take rows the gate left out off the export's counts of kept pairs (the card's split and totals)."""
    for row in rows:
        meta = row.get("meta") or {}
        drops["_kept"] -= 1
        drops[f"_split_{meta.get('split')}"] -= 1
        if meta.get("adjudicated"):
            drops["_adjudicated"] -= 1
        drops["pii"] += 1
