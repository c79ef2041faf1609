"""The personal-data scan at scale: items/s of the scanner, and of the snapshot gate over JSONL lines.

Generates N items (default 100k) like an export's: a prompt of 30–80 words, k = 4 candidates of 60–160 words and a
reason of 10–25 words, with numbers, dates, versions and prices in the text (what the regular expressions' first
pass sees in real answers) and personal data seeded into 2 % of the items (the fixture of tests/pii). Then:

- scan: each item's prompt, candidates and reason through ``app.pii.scanner.scan`` (what the report does per item);
- gate: the items as the JSONL rows a k = 4 export writes (5 pairs an item, implied), through
  ``PiiGate(mask).lines`` (what writing a snapshot adds: parse each line, scan each text once per item, mask).

No database: the figures are the gate's own cost, beside the export's (bench/export.py).

    python bench/pii.py              # 100k items
    python bench/pii.py --items 20000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.pii.scanner import scan  # noqa: E402
from app.pii.schemas import PiiDecision  # noqa: E402
from app.pii.service import PiiGate  # noqa: E402

WORDS = (
    "the model answer should explain why this approach works and when it fails in practice with a clear example "
    "of the code data result value user request function list table step first second because however which"
).split()
NOISE = ["3.12", "2024-01-15", "v1.2.3", "$19.99", "42", "10:30", "1,234", "50%", "#1234", "1.5x", "(2)", "RFC 9110"]
SEEDED = [
    json.loads(line)["text"] for line in (ROOT / "tests/pii/fixtures/seeded.jsonl").read_text("utf-8").splitlines()
]


def _text(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(NOISE) if rng.random() < 0.06 else rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def make_items(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        item = {
            "id": i + 1,
            "prompt": _text(rng, 30, 80),
            "candidates": [_text(rng, 60, 160) for _ in range(4)],
            "reason": _text(rng, 10, 25),
        }
        if rng.random() < 0.02:  # personal data in one of the texts
            where = rng.choice(["prompt", "candidate", "reason"])
            seeded = rng.choice(SEEDED)
            if where == "candidate":
                item["candidates"][0] += " " + seeded
            else:
                item[where] += " " + seeded
        items.append(item)
    return items


def jsonl_of(items: list[dict[str, Any]]) -> list[bytes]:
    """Each item's 5 implied pairs at k = 4 (best ≻ each other, each other ≻ worst) as export rows."""
    lines = []
    for item in items:
        ids = [item["id"] * 10 + p for p in range(4)]
        for chosen, rejected in ((0, 1), (0, 2), (0, 3), (1, 3), (2, 3)):
            row = {
                "prompt": item["prompt"],
                "chosen": item["candidates"][chosen],
                "rejected": item["candidates"][rejected],
                "reason": item["reason"],
                "meta": {
                    "item_id": item["id"],
                    "chosen_candidate_id": ids[chosen],
                    "rejected_candidate_id": ids[rejected],
                    "split": "train",
                    "adjudicated": False,
                },
            }
            lines.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    items = make_items(args.items)
    chars = sum(len(i["prompt"]) + sum(map(len, i["candidates"])) + len(i["reason"]) for i in items)
    print(f"{len(items):,} items, {chars / len(items):,.0f} characters of text each")

    started, cpu = time.perf_counter(), time.process_time()
    with_hits = 0
    for item in items:
        found = [*scan(item["prompt"]), *(h for c in item["candidates"] for h in scan(c)), *scan(item["reason"])]
        with_hits += bool(found)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"scan: {len(items) / took:,.0f} items/s, {len(items) / cpu:,.0f} per CPU second "
        f"({took:.1f} s; {with_hits:,} items with matches)"
    )

    lines = jsonl_of(items)
    gate = PiiGate(PiiDecision(choice="mask"))
    started, cpu = time.perf_counter(), time.process_time()
    written = sum(1 for _ in gate.lines(lines))
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"gate (mask): {len(items) / took:,.0f} items/s, {len(items) / cpu:,.0f} per CPU second, "
        f"{written / took:,.0f} lines/s ({took:.1f} s; {gate.done['items_with_hits']:,} items masked)"
    )


if __name__ == "__main__":
    main()
