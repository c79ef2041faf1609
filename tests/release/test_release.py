"""`prefstudio release`: a snapshot as a Hugging Face dataset that `datasets` loads and the Hub's card parser reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.db import Database
from app.export import snapshots
from app.models import Snapshot

runner = CliRunner()
COLUMNS = ["prompt", "chosen", "rejected", "reason", "meta"]


def _jsonl(settings: Settings, db: Database, snapshot_id: int, part: str | None = None) -> list[dict[str, Any]]:
    with db.session(write=False) as s:
        snapshot = snapshots.get_snapshot(s, snapshot_id=snapshot_id)
        path = snapshots.part_path(snapshot, part, settings)[0] if part else snapshots.snapshot_path(snapshot, settings)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _release(snapshot_id: int, out: Path, *extra: str) -> None:
    result = runner.invoke(cli, ["release", str(snapshot_id), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output


def _by_split(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    split: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        split.setdefault(row["meta"]["split"], []).append(row)
    return split


@pytest.mark.parametrize("fmt", ["standard", "conversational"])
def test_a_release_loads_with_datasets_as_the_snapshot_rows(
    env: None, make_snapshot: Callable[..., int], settings: Settings, db: Database, tmp_path: Path, fmt: str
) -> None:
    from datasets import load_dataset

    snapshot_id = make_snapshot(fmt)
    out = tmp_path / "release"
    _release(snapshot_id, out, "--language", "en", "--language", "zh")
    expected = _by_split(_jsonl(settings, db, snapshot_id))
    assert set(expected) == {"train", "test"}  # test share 0.5: the fixture's items fall on both sides
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    loaded = load_dataset("parquet", data_dir=str(out / "data"), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == set(expected)
    for split, rows in expected.items():
        got = loaded[split]
        assert got.column_names == COLUMNS
        assert got.num_rows == len(rows)
        for mine, theirs in zip(got, rows, strict=True):  # same rows, same order
            assert {k: mine[k] for k in COLUMNS[:4]} == {k: theirs[k] for k in COLUMNS[:4]}
            assert json.loads(mine["meta"]) == theirs["meta"]
    if fmt == "conversational":
        first = loaded["train"][0]
        assert first["chosen"][0]["role"] == "assistant" and isinstance(first["prompt"], list)
        assert any(m["role"] == "system" for row in loaded["train"] for m in row["prompt"])  # chat prompts kept
    # Through the card's configs: the default config, and the ties part as a config of its own.
    default = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert {split: default[split].num_rows for split in default} == {s: len(r) for s, r in expected.items()}
    ties = load_dataset(str(out), "ties", cache_dir=str(tmp_path / "cache"))
    tie_rows = _jsonl(settings, db, snapshot_id, "ties")
    assert len(tie_rows) == 2 and sum(ties[split].num_rows for split in ties) == 2
    assert all(json.loads(row["meta"])["tie"] is True for split in ties for row in ties[split])


def test_the_card_is_read_by_the_hub_client(
    env: None, make_snapshot: Callable[..., int], settings: Settings, db: Database, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq
    from datasets import Features
    from huggingface_hub import DatasetCard

    snapshot_id = make_snapshot("conversational")
    out = tmp_path / "release"
    _release(snapshot_id, out, "--license", "cc-by-4.0", "--language", "en")
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["language"] == ["en"]
    assert data["task_categories"] == ["text-generation"]
    assert {"dpo", "preference", "human-feedback"} <= set(data["tags"])
    configs = {c["config_name"]: c for c in data["configs"]}
    assert set(configs) == {"default", "ties"} and configs["default"]["default"] is True
    assert {f["split"]: f["path"] for f in configs["default"]["data_files"]} == {
        "train": "data/train-00000-of-00001.parquet",
        "test": "data/test-00000-of-00001.parquet",
    }
    expected = _by_split(_jsonl(settings, db, snapshot_id))
    info = {i["config_name"]: i for i in data["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in info["default"]["splits"]} == {k: len(v) for k, v in expected.items()}
    assert all(s["num_bytes"] > 0 for s in info["default"]["splits"])
    # The features the card declares are those `datasets` reads from the parquet files themselves.
    schema = pq.read_schema(out / "data/train-00000-of-00001.parquet")
    assert info["default"]["features"] == Features.from_arrow_schema(schema)._to_yaml_list()
    # The body carries the snapshot's data card: its sha256, the agreement and annotator sections.
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, snapshot_id)
        assert snapshot is not None and snapshot.sha256 is not None
        sha = snapshot.sha256
    assert sha in card.text and "### Agreement" in card.text and "### Annotator pool" in card.text
    manifest = json.loads((out / "release.json").read_text())
    assert manifest["snapshot"]["id"] == snapshot_id and manifest["snapshot"]["sha256"] == sha


def test_two_releases_of_a_snapshot_are_byte_identical(
    env: None, make_snapshot: Callable[..., int], tmp_path: Path
) -> None:
    snapshot_id = make_snapshot("conversational")
    first, second = tmp_path / "one", tmp_path / "two"
    _release(snapshot_id, first, "--language", "en")
    second.mkdir()  # an empty directory is a fine --out
    _release(snapshot_id, second, "--language", "en")
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second).as_posix() for p in second.rglob("*") if p.is_file())
    assert "release.json" in files and "README.md" in files and "ties/train-00000-of-00001.parquet" in files
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_bad_input_is_refused_with_a_clear_error(
    env: None, make_snapshot: Callable[..., int], db: Database, tmp_path: Path
) -> None:
    unknown = runner.invoke(cli, ["release", "999999", "--out", str(tmp_path / "a")])
    assert unknown.exit_code == 1 and "No such snapshot" in unknown.output
    pending = make_snapshot(write=False)
    result = runner.invoke(cli, ["release", str(pending), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and f"Snapshot {pending} is not ready (state pending" in result.output
    snapshots.fail_snapshot(db, snapshot_id=pending, error="the worker died")
    result = runner.invoke(cli, ["release", str(pending), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "not ready (state failed: the worker died)" in result.output
    ready = make_snapshot()
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    result = runner.invoke(cli, ["release", str(ready), "--out", str(full)])
    assert result.exit_code == 1 and "is not empty" in result.output
    assert [p.name for p in full.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = runner.invoke(cli, ["release", str(ready), "--out", str(a_file)])
    assert result.exit_code == 1 and "is not a directory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file", "full"]  # nothing half-written


def test_empty_parts_are_no_configs_and_an_empty_snapshot_is_refused(
    env: None, make_snapshot: Callable[..., int], tmp_path: Path
) -> None:
    """`datasets` cannot load a split without rows: an empty part is left out (the card names it), and a snapshot
    with no pairs at all is not released."""
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    out = tmp_path / "release"
    _release(make_snapshot(per_dimension=True), out)  # only "overall" has votes: every dimension part is empty
    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.to_dict()["configs"]] == ["default", "ties"]
    assert "no config here: dimension-helpful, dimension-harmless" in card.text
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "release.json", "ties"]
    assert sum(load_dataset(str(out), cache_dir=str(tmp_path / "cache"))[s].num_rows for s in ("train", "test")) == 12
    assert runner.invoke(cli, ["verify", str(out)]).exit_code == 0

    empty = make_snapshot(min_judgments=10)
    result = runner.invoke(cli, ["release", str(empty), "--out", str(tmp_path / "empty")])
    assert result.exit_code == 1 and f"Snapshot {empty} has no pairs" in result.output
    assert not (tmp_path / "empty").exists()


def test_a_snapshot_file_damaged_on_the_server_is_not_released(
    env: None, make_snapshot: Callable[..., int], settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Same size, one byte changed: the size check of the snapshot's path passes, the hash on the way does not."""
    snapshot_id = make_snapshot()
    with db.session(write=False) as s:
        path = snapshots.snapshot_path(snapshots.get_snapshot(s, snapshot_id=snapshot_id), settings)
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(body))
    result = runner.invoke(cli, ["release", str(snapshot_id), "--out", str(tmp_path / "release")])
    assert result.exit_code == 1 and f"{path.name} no longer matches its record" in result.output
    assert not (tmp_path / "release").exists() and not list(tmp_path.glob(".release.tmp-*"))
