"""The held-out split: the export's meta.split when the rows carry it, a hash of the prompt when they do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.export.pairs import split_of
from app.training.heldout import prompt_split, split_snapshot


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(prompt: Any, **meta: Any) -> dict[str, Any]:
    return {"prompt": prompt, "chosen": "a", "rejected": "b", "meta": meta}


def test_the_exports_split_is_kept_line_for_line(tmp_path: Path) -> None:
    rows = [row(f"p{i}", item_id=i, split=split_of("dpo", i, 0.5)) for i in range(1, 21)]
    held = split_snapshot(write(tmp_path / "s.jsonl", rows), tmp_path)
    tests = [r for r in rows if r["meta"]["split"] == "test"]
    assert 0 < len(tests) < len(rows)
    assert (held.train_rows, held.test_rows, held.by_prompt_hash) == (len(rows) - len(tests), len(tests), 0)
    assert held.test is not None
    assert [json.loads(line) for line in held.test.read_text().splitlines()] == tests
    assert [json.loads(line) for line in held.train.read_text().splitlines()] == [r for r in rows if r not in tests]


def test_rows_without_a_split_go_by_their_prompt(tmp_path: Path) -> None:
    prompts = [f"prompt {i}" for i in range(60)] + [[{"role": "user", "content": "chat"}]]
    rows = [row(p) for p in prompts for _ in range(2)]  # two pairs per prompt
    rows.append({"prompt": "no meta at all", "chosen": "a", "rejected": "b"})
    held = split_snapshot(write(tmp_path / "s.jsonl", rows), tmp_path)
    assert held.by_prompt_hash == len(rows)
    expected_tests = [r for r in rows if prompt_split(r["prompt"]) == "test"]
    assert 0 < len(expected_tests) < len(rows) // 2  # about a tenth of the prompts
    assert held.test is not None
    got = [json.loads(line) for line in held.test.read_text().splitlines()]
    assert got == expected_tests
    paired = [t for t in got if t["prompt"] != "no meta at all"]
    assert all(sum(g["prompt"] == t["prompt"] for g in got) == 2 for t in paired)  # both pairs of a prompt together


def test_prompt_split_is_stable() -> None:
    assert prompt_split("prompt 1") == prompt_split("prompt 1")
    assert prompt_split({"b": 1, "a": 2}) == prompt_split({"a": 2, "b": 1})  # key order does not matter
    assert prompt_split("anything", test_share=0.0) == "train" and prompt_split("anything", test_share=1.0) == "test"


def test_no_test_rows_means_train_on_everything(tmp_path: Path) -> None:
    rows = [row(f"p{i}", split="train") for i in range(5)]
    held = split_snapshot(write(tmp_path / "s.jsonl", rows), tmp_path)
    assert (held.test, held.train_rows, held.test_rows) == (None, 5, 0)


def test_a_test_only_snapshot_is_trained_on_whole(tmp_path: Path) -> None:
    rows = [row(f"p{i}", split="test") for i in range(3)]
    held = split_snapshot(write(tmp_path / "s.jsonl", rows), tmp_path)
    assert (held.test, held.train_rows) == (None, 3)
    assert len(held.train.read_text().splitlines()) == 3
