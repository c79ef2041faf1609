"""`prefstudio verify`: a release against its release.json, a snapshot's file against its record; one changed byte
fails either."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.db import Database
from app.export import snapshots

runner = CliRunner()


def _flip_one_byte(path: Path, at: int | None = None) -> None:
    body = bytearray(path.read_bytes())
    at = len(body) // 2 if at is None else at
    body[at] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(body))


def _snapshot_file(db: Database, settings: Settings, snapshot_id: int) -> tuple[Path, str, int]:
    with db.session(write=False) as s:
        snapshot = snapshots.get_snapshot(s, snapshot_id=snapshot_id)
        assert snapshot.sha256 is not None
        return snapshots.snapshot_path(snapshot, settings), snapshot.sha256, snapshot.row_count


def test_a_release_verifies_and_one_changed_byte_fails_it(
    env: None, make_snapshot: Callable[..., int], tmp_path: Path
) -> None:
    out = tmp_path / "release"
    result = runner.invoke(cli, ["release", str(make_snapshot()), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ok = runner.invoke(cli, ["verify", str(out)])
    assert ok.exit_code == 0 and "ok: release of snapshot" in ok.output and "4 files" in ok.output
    # The Hub client's and git's own files beside a clone or a download are not the release's.
    (out / ".gitattributes").write_text("*.parquet filter=lfs\n")
    (out / ".cache/huggingface").mkdir(parents=True)
    (out / ".cache/huggingface/download.lock").write_text("")
    assert runner.invoke(cli, ["verify", str(out)]).exit_code == 0

    for name in ("data/train-00000-of-00001.parquet", "README.md"):
        pristine = (out / name).read_bytes()
        _flip_one_byte(out / name)
        failed = runner.invoke(cli, ["verify", str(out)])
        assert failed.exit_code == 1 and "does not verify" in failed.output
        assert f"{name}: sha256" in failed.output, failed.output
        (out / name).write_bytes(pristine)
    assert runner.invoke(cli, ["verify", str(out)]).exit_code == 0
    # Rows are checked against each parquet file's footer.
    manifest = json.loads((out / "release.json").read_text())
    entry = next(f for f in manifest["files"] if f["name"] == "data/train-00000-of-00001.parquet")
    entry["rows"] += 1
    pristine = (out / "release.json").read_bytes()
    (out / "release.json").write_text(json.dumps(manifest))
    rows = runner.invoke(cli, ["verify", str(out)])
    assert rows.exit_code == 1 and f"rows, release.json says {entry['rows']}" in rows.output
    (out / "release.json").write_bytes(pristine)

    (out / "data/extra-00000-of-00001.parquet").write_bytes(b"PAR1")
    unlisted = runner.invoke(cli, ["verify", str(out)])
    assert unlisted.exit_code == 1 and "data/extra-00000-of-00001.parquet: not listed" in unlisted.output
    (out / "data/extra-00000-of-00001.parquet").unlink()
    (out / "ties/train-00000-of-00001.parquet").unlink()
    missing = runner.invoke(cli, ["verify", str(out)])
    assert missing.exit_code == 1 and "ties/train-00000-of-00001.parquet: missing" in missing.output
    (out / "release.json").unlink()
    assert "no release.json" in runner.invoke(cli, ["verify", str(out)]).output


def test_a_truncated_parquet_file_is_named(env: None, make_snapshot: Callable[..., int], tmp_path: Path) -> None:
    out = tmp_path / "release"
    assert runner.invoke(cli, ["release", str(make_snapshot()), "--out", str(out)]).exit_code == 0
    path = out / "data/test-00000-of-00001.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    failed = runner.invoke(cli, ["verify", str(out)])
    assert failed.exit_code == 1
    assert "data/test-00000-of-00001.parquet: not a readable parquet file" in failed.output
    assert "bytes, release.json says" in failed.output


def test_a_snapshot_file_verifies_by_its_name_its_sha256_or_given_figures(
    env: None, make_snapshot: Callable[..., int], db: Database, settings: Settings, tmp_path: Path
) -> None:
    snapshot_id = make_snapshot()
    stored, sha, rows = _snapshot_file(db, settings, snapshot_id)
    assert runner.invoke(cli, ["verify", str(stored)]).exit_code == 0
    # Named as the API names a download, or as the ties part's download.
    downloaded = tmp_path / f"snapshot-{snapshot_id}.jsonl"
    shutil.copyfile(stored, downloaded)
    ok = runner.invoke(cli, ["verify", str(downloaded)])
    assert ok.exit_code == 0 and f"as snapshot {snapshot_id} records" in ok.output and sha in ok.output
    with db.session(write=False) as s:
        ties, _ = snapshots.part_path(snapshots.get_snapshot(s, snapshot_id=snapshot_id), "ties", settings)
    shutil.copyfile(ties, tmp_path / f"snapshot-{snapshot_id}-ties.jsonl")
    part = runner.invoke(cli, ["verify", str(tmp_path / f"snapshot-{snapshot_id}-ties.jsonl")])
    assert part.exit_code == 0 and f"part ties of snapshot {snapshot_id}" in part.output
    # Any name: found by its sha256; or checked against figures given by hand.
    renamed = tmp_path / "pairs.jsonl"
    shutil.copyfile(stored, renamed)
    assert runner.invoke(cli, ["verify", str(renamed)]).exit_code == 0
    assert runner.invoke(cli, ["verify", str(renamed), "--sha256", sha, "--rows", str(rows)]).exit_code == 0
    wrong_rows = runner.invoke(cli, ["verify", str(renamed), "--sha256", sha, "--rows", str(rows + 1)])
    assert wrong_rows.exit_code == 1 and f"{rows} rows, --sha256 has {rows + 1}" in wrong_rows.output

    for path in (downloaded, renamed):
        _flip_one_byte(path, at=10)
    changed = runner.invoke(cli, ["verify", str(downloaded)])
    assert changed.exit_code == 1 and f"snapshot {snapshot_id} has {sha}" in changed.output
    by_hand = runner.invoke(cli, ["verify", str(renamed), "--sha256", sha])
    assert by_hand.exit_code == 1 and "--sha256 has" in by_hand.output
    unknown = runner.invoke(cli, ["verify", str(renamed)])
    assert unknown.exit_code == 1 and "no snapshot of this database" in unknown.output
    assert runner.invoke(cli, ["verify", str(tmp_path / "nothing.jsonl")]).exit_code == 2
