"""`prefstudio verify`: a release directory against its release.json, a snapshot's JSONL against its record.

A release: every file release.json lists must be there with its sha256, bytes and (parquet) row count, and no
other file may be there (a clone's ``.git/``, ``.gitattributes`` and the Hub client's ``.cache/`` excepted).
A snapshot file: its sha256, bytes and line count against the snapshot's record, found by the file's name (as
stored, or as the API names a download: ``snapshot-<id>.jsonl``, ``snapshot-<id>-<part>.jsonl``), else by its
sha256 — or against ``--sha256``/``--rows`` given by hand, without a database.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Snapshot
from app.release.parquet import file_digest, parquet_rows
from app.release.service import MANIFEST

IGNORED_DIRS = (".git", ".cache")
IGNORED_FILES = (".gitattributes",)
DOWNLOAD_NAME = re.compile(r"^snapshot-(\d{1,10})(?:-(.+))?\.jsonl$")


@dataclass
class Report:
    """What was checked and what differs; ``ok`` when nothing does."""

    subject: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Expected:
    """What a snapshot file should be: its recorded sha256, rows and bytes, and where that record comes from."""

    sha256: str
    rows: int | None
    size: int | None
    label: str


def verify_release(directory: Path) -> Report:
    """Check every file of the release's manifest and that nothing else is there."""
    report = Report(subject=str(directory))
    try:
        manifest = json.loads((directory / MANIFEST).read_bytes())
        files: list[dict[str, Any]] = manifest["files"]
    except FileNotFoundError:
        report.problems.append(f"no {MANIFEST}: not a release directory")
        return report
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{MANIFEST} is not a release manifest ({exc})")
        return report
    listed = set()
    for entry in files:
        name = str(entry.get("name", ""))
        listed.add(name)
        report.problems += _check_listed(directory, entry)
        report.checked += 1
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative not in listed | {MANIFEST} and not _ignored(relative):
            report.problems.append(f"{relative}: not listed in {MANIFEST}")
    snapshot = manifest.get("snapshot") or {}
    rows = sum(int(f.get("rows") or 0) for f in files if f.get("config") == "default")
    report.summary = (
        f"release of snapshot {snapshot.get('id')} (sha256 {snapshot.get('sha256')}): {report.checked} files, "
        f"{rows:,} pairs in the default config"
    )
    return report


def _ignored(relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return parts[0] in IGNORED_DIRS or relative in IGNORED_FILES


def _check_listed(directory: Path, entry: dict[str, Any]) -> list[str]:
    """What differs between one listed file and its entry (nothing: [])."""
    name = str(entry.get("name", ""))
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        return [f"{name!r}: not a path inside the release"]
    path = directory / relative
    if not path.is_file():
        return [f"{name}: missing"]
    sha, size = file_digest(path)
    problems = []
    if size != entry.get("bytes"):
        problems.append(f"{name}: {size:,} bytes, release.json says {entry.get('bytes')}")
    if sha != entry.get("sha256"):
        problems.append(f"{name}: sha256 {sha}, release.json says {entry.get('sha256')}")
    if entry.get("rows") is not None and name.endswith(".parquet"):
        try:
            rows = parquet_rows(path)
        except Exception as exc:  # pyarrow's errors for a damaged file vary (ArrowInvalid, OSError)
            problems.append(f"{name}: not a readable parquet file ({type(exc).__name__})")
        else:
            if rows != entry["rows"]:
                problems.append(f"{name}: {rows:,} rows, release.json says {entry['rows']}")
    return problems


def verify_file(path: Path, expected: Expected) -> Report:
    """Check a JSONL file against ``expected``: sha256, and bytes and rows where known."""
    digest = hashlib.sha256()
    size = rows = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
            rows += block.count(b"\n")
            last = block[-1:]
    rows += last != b"\n"  # a last line without its newline
    report = Report(subject=str(path), checked=1)
    sha = digest.hexdigest()
    if sha != expected.sha256.lower():
        report.problems.append(f"sha256 {sha}, {expected.label} has {expected.sha256}")
    if expected.size is not None and size != expected.size:
        report.problems.append(f"{size:,} bytes, {expected.label} has {expected.size:,}")
    if expected.rows is not None and rows != expected.rows:
        report.problems.append(f"{rows:,} rows, {expected.label} has {expected.rows:,}")
    report.summary = f"{path.name}: {rows:,} rows, {size:,} bytes, sha256 {sha} — as {expected.label} records"
    return report


def expected_of_file(session: Session, *, path: Path, snapshot_id: int | None = None) -> Expected | None:
    """The record a snapshot file is checked against: the snapshot (or part) its name points to (or
    ``snapshot_id``), else the one whose sha256 it has; None when no snapshot of this database matches."""
    by_name = _by_name(session, path.name, snapshot_id)
    if by_name is not None:
        return by_name
    sha, _ = file_digest(path)
    for snapshot in session.scalars(select(Snapshot).where(Snapshot.state == "ready").order_by(Snapshot.id)):
        for record in _records(snapshot):
            if record.sha256 == sha:
                return record
    return None


def _by_name(session: Session, name: str, snapshot_id: int | None) -> Expected | None:
    match = DOWNLOAD_NAME.match(name)
    wanted = snapshot_id if snapshot_id is not None else int(match.group(1)) if match else None
    snapshot = session.get(Snapshot, wanted) if wanted is not None else None
    if snapshot is None or snapshot.state != "ready":
        return None
    rest = match.group(2) if match else None
    records = _records(snapshot)
    parts: list[dict[str, Any] | None] = [None, *(snapshot.parts or [])]
    for record, file_name, part in zip(records, _file_names(snapshot), parts, strict=True):
        if name == file_name or (part is not None and rest == part["name"]):
            return record
    return records[0] if snapshot_id is not None or rest is None else None


def _records(snapshot: Snapshot) -> list[Expected]:
    main = Expected(snapshot.sha256 or "", snapshot.row_count, snapshot.size_bytes, f"snapshot {snapshot.id}")
    parts = [
        Expected(p.get("sha256") or "", p.get("rows"), p.get("bytes"), f"part {p['name']} of snapshot {snapshot.id}")
        for p in snapshot.parts or []
    ]
    return [main, *parts]


def _file_names(snapshot: Snapshot) -> list[str | None]:
    return [snapshot.file_name, *(p.get("file_name") for p in snapshot.parts or [])]
