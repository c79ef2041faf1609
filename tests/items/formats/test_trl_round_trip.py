"""TRL round trip: our export → import as ``trl`` into a fresh project → export again gives the same prompt, chosen,
rejected (and reason) rows, in the standard and the conversational format, through the real export code."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from app.db import Database
from app.export.filters import resolve
from app.export.rows import jsonl_lines
from app.export.schemas import ExportFilter
from app.items.importer import import_items
from app.items.judgments import import_judgments
from app.models import Project
from tests.items.formats.helpers import fixture, items, judgments, project, run

PROMPTS: list[Any] = [
    "Explain recursion in one sentence.",
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another?"},
    ],
    "Say something kind.",
]
CANDIDATES = [
    [{"text": "A function that calls itself.", "model": "sft-v1", "seed": 1}, {"text": "Loops.", "model": "sft-v1"}],
    [{"text": "Pear.", "model": "sft-v2", "params": {"temperature": 0.7}}, {"text": "Apple again.", "model": "sft-v2"}],
    [{"text": "You did well today."}, {"text": "  You did fine.  "}],
]
# Three annotators a pair: item 0 → candidate 0 wins 2–1, item 1 → candidate 1 wins 3–0, item 2 → a tie (not exported)
VOTES = [[(0, 1), (0, 1), (1, 0)], [(1, 0), (1, 0), (1, 0)], ["tie", "tie", (0, 1)]]


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _source(db: Database) -> int:
    pid = project(db, "src", dimensions=[{"key": "helpful", "label": "Helpful"}])
    lines = [
        {"id": f"q{i}", "prompt": p, "candidates": c} for i, (p, c) in enumerate(zip(PROMPTS, CANDIDATES, strict=True))
    ]
    judged = []
    for i, votes in enumerate(VOTES):
        for a, vote in enumerate(votes):
            verdict = vote if vote == "tie" else {"chosen": vote[0], "rejected": vote[1]}
            reason = f"reason {a} on q{i}" if a != 1 else ""
            judged.append(
                {"item": f"q{i}", "annotator": f"ann{a}", "verdicts": {"overall": verdict, "helpful": "na"}}
                | ({"reason": reason} if reason else {})
            )
    with db.session() as s:
        target = s.get(Project, pid)
        assert target is not None
        import_items(s, project=target, stream=io.BytesIO(_jsonl(lines)), filename="src.jsonl")
        import_judgments(s, project=target, stream=io.BytesIO(_jsonl(judged)))
    return pid


def _export(db: Database, project_id: int, fmt: str) -> list[dict[str, Any]]:
    with db.session(write=False) as s:
        target = s.get(Project, project_id)
        assert target is not None
        rules = resolve(s, project=target, filters=ExportFilter(format=fmt, min_judgments=1, split="all"), key=b"k")
        return [json.loads(line) for line in jsonl_lines(s, rules=rules)]


@pytest.mark.parametrize("fmt", ["standard", "conversational"])
def test_export_import_export_gives_the_same_rows(db: Database, fmt: str) -> None:
    first = _export(db, _source(db), fmt)
    assert len(first) == 2  # the tie of item 2 is not exported
    copy = project(db, "copy", dimensions=[{"key": "helpful", "label": "Helpful"}])
    result = run(db, copy, b"".join(json.dumps(r).encode() + b"\n" for r in first), "trl")
    assert result.created == 2 and result.judgments == 2 and result.annotators_created == ["trl"]
    second = _export(db, copy, fmt)
    fields = ("prompt", "chosen", "rejected", "reason")
    assert [{f: r[f] for f in fields} for r in second] == [{f: r[f] for f in fields} for r in first]
    # What meta keeps: the item's external id, each side's model, parameters and seed.
    kept = ("external_id", "chosen_model", "rejected_model", "chosen_params", "rejected_params", "chosen_seed")
    assert [{f: r["meta"][f] for f in kept} for r in second] == [{f: r["meta"][f] for f in kept} for r in first]
    # What differs, and why: a new project's ids, one vote (the "trl" annotator) instead of three, chosen first.
    assert first[0]["meta"]["votes"] == {"chosen": 2, "rejected": 1, "tie": 0}
    assert second[0]["meta"]["votes"] == {"chosen": 1, "rejected": 0, "tie": 0}
    assert [r["meta"]["chosen_position"] for r in second] == [0, 0]
    assert first[1]["meta"]["chosen_position"] == 1


def test_imported_rows_are_trl_judgments_with_the_rows_reason(db: Database) -> None:
    first = _export(db, _source(db), "conversational")
    copy = project(db, "copy2")
    run(db, copy, b"".join(json.dumps(r).encode() + b"\n" for r in first), "trl")
    stored = items(db, copy)
    assert stored["q1"]["prompt"] == PROMPTS[1] and stored["q1"]["texts"] == ["Apple again.", "Pear."]
    assert stored["q1"]["models"] == ["sft-v2", "sft-v2"]
    votes = judgments(db, copy)
    assert votes[("q0", "trl")]["overall"] == (0, 1)
    assert votes[("q0", "trl")]["_reason"] == first[0]["reason"] != ""
    assert votes[("q0", "trl")]["helpful"] == "na" and votes[("q0", "trl")]["_external"]


def test_the_implicit_prompt_form_and_the_conversational_fixture(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("trl-conversational.jsonl"), "trl")
    assert result.created == 2 and result.judgments == 2
    stored = items(db, pid)
    assert stored["syn-1"]["prompt"] == [{"role": "user", "content": "Give me a synonym for happy."}]
    assert stored["syn-1"]["texts"] == ["Joyful.", "Sad."]
    implicit = next(v for k, v in stored.items() if k != "syn-1")
    assert implicit["prompt"] == [{"role": "user", "content": "Count to three."}]
    assert implicit["texts"] == ["1, 2, 3", "3, 2, 1"]
    assert judgments(db, pid)[("syn-1", "trl")]["_reason"] == "Sad is an antonym."
