"""The held-out split a run is evaluated on: the snapshot's own train/test split, row by row.

Every exported row carries ``meta.split``, fixed per item by the export (``app.export.pairs.split_of``: a hash of
the project and the item id), so a run's test rows are the items the export held out. A row without it (a file
made elsewhere) is placed by a hash of its prompt, so that all pairs of one prompt land on the same side.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The share of prompts held out when the rows do not say their split (the export's default test share).
FALLBACK_TEST_SHARE = 0.1


@dataclass(frozen=True)
class HeldOut:
    """Where the train and test rows were written, and how the split was decided."""

    train: Path
    test: Path | None  # None: no test rows, the run trains on everything and reports no eval figure
    train_rows: int
    test_rows: int
    by_prompt_hash: int  # rows that carried no split and were placed by a hash of their prompt


def prompt_split(prompt: Any, test_share: float = FALLBACK_TEST_SHARE) -> str:
    """ "train" or "test" for a row without ``meta.split``: a hash of its prompt, stable across machines."""
    text = json.dumps(prompt, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    fraction = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
    return "test" if fraction < test_share else "train"


def row_split(row: dict[str, Any]) -> tuple[str, bool]:
    """The row's split and whether it came from the prompt hash (the row did not say)."""
    meta = row.get("meta")
    split = meta.get("split") if isinstance(meta, dict) else None
    if split in ("train", "test"):
        return str(split), False
    return prompt_split(row.get("prompt")), True


def split_snapshot(path: Path, work: Path) -> HeldOut:
    """Write the snapshot's train and test rows to two files under ``work``, lines unchanged. With no test rows,
    or no train rows (a snapshot of the test split only), every row is trained on and none is held out."""
    lines: dict[str, list[bytes]] = {"train": [], "test": []}
    hashed = 0
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            split, from_hash = row_split(json.loads(line))
            hashed += from_hash
            lines[split].append(line if line.endswith(b"\n") else line + b"\n")
    if not lines["train"] or not lines["test"]:
        lines = {"train": lines["train"] + lines["test"], "test": []}
    train = work / "train.jsonl"
    train.write_bytes(b"".join(lines["train"]))
    test = None
    if lines["test"]:
        test = work / "test.jsonl"
        test.write_bytes(b"".join(lines["test"]))
    return HeldOut(train, test, len(lines["train"]), len(lines["test"]), hashed)
