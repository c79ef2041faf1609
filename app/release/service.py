"""Building a release: a ready snapshot as a Hugging Face dataset directory.

``data/<split>-00000-of-00001.parquet`` holds the snapshot's pairs (config ``default``), split into train and test
by each pair's ``meta.split`` (the project's deterministic split); each part of the snapshot (ties, other
dimensions) is a config of its own under ``<part>/``. Beside them: ``README.md`` (the dataset card) and
``release.json`` (the manifest ``prefstudio verify`` checks). The directory is written under a temporary name and
renamed into place; the same snapshot always gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.config import Settings
from app.export.snapshots import get_snapshot, part_path, project_slug, snapshot_path
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import Project
from app.release.card import dataset_card
from app.release.parquet import SplitWriter, arrow_schema, file_digest
from app.release.schemas import DEFAULT_CONFIG, ReleasedFile, ReleaseSource, SourceFile
from app.training.heldout import row_split

MANIFEST = "release.json"
CARD = "README.md"
MANIFEST_VERSION = 1
SPLITS = ("train", "test")
CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def release_source(session: Session, *, snapshot_id: int, settings: Settings) -> ReleaseSource:
    """The ready snapshot ``snapshot_id`` and its files; NotFound if unknown, Conflict while it is not ready."""
    snapshot = get_snapshot(session, snapshot_id=snapshot_id)
    if snapshot.state != "ready":
        detail = f": {snapshot.error}" if snapshot.error else ""
        raise Conflict(
            f"Snapshot {snapshot_id} is not ready (state {snapshot.state}{detail}); only a ready one is released"
        )
    main = snapshot_path(snapshot, settings)
    project = session.get(Project, snapshot.project_id)
    assert snapshot.sha256 is not None
    files = [SourceFile(DEFAULT_CONFIG, main, snapshot.sha256, snapshot.row_count, snapshot.size_bytes)]
    for part in snapshot.parts or []:
        if not CONFIG_NAME.match(part["name"]) or part["name"] in (DEFAULT_CONFIG, "data"):
            raise Invalid(f"Snapshot {snapshot_id} has a part named {part['name']!r}, which cannot name a config")
        path, found = part_path(snapshot, part["name"], settings)
        files.append(
            SourceFile(
                found["name"], path, found["sha256"], found["rows"], found["bytes"], found["kind"], found["dimension"]
            )
        )
    return ReleaseSource(
        snapshot_id=snapshot.id,
        name=snapshot.name,
        project_slug=project_slug(session, snapshot),
        project_name=project.name if project is not None else "",
        conversational=snapshot.format == "conversational",
        dimension=str((snapshot.filters or {}).get("dimension", "overall")),
        sha256=snapshot.sha256,
        rows=snapshot.row_count,
        size=snapshot.size_bytes,
        card=snapshot.card,
        files=files,
    )


def check_out(out: Path) -> None:
    """``out`` may be new or an empty directory; anything else is refused before any work."""
    if out.exists() and not out.is_dir():
        raise Invalid(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise Invalid(f"{out} exists and is not empty: give a new or an empty directory")


def build_release(
    source: ReleaseSource,
    *,
    out: Path,
    license: str,
    languages: list[str],
    on_rows: Callable[[int], None] | None = None,
) -> list[ReleasedFile]:
    """Write the release of ``source`` into ``out`` (new or empty): parquet per config and split, the dataset card
    and the manifest; returns the files as the manifest lists them."""
    check_out(out)
    if source.rows == 0:
        raise Invalid(f"Snapshot {source.snapshot_id} has no pairs: there is nothing to release")
    check_sources(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
        files: list[ReleasedFile] = []
        for source_file in (f for f in source.files if f.rows):  # an empty part is no config (the card says so)
            files += _write_config(tmp, source_file, arrow_schema(source.conversational), on_rows)
        card = dataset_card(source, files, license=license, languages=languages)
        (tmp / CARD).write_text(card, encoding="utf-8")
        sha, size = file_digest(tmp / CARD)
        files = sorted([*files, ReleasedFile(CARD, sha, size)], key=lambda f: f.name)
        (tmp / MANIFEST).write_bytes(manifest_bytes(source, files))
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files


def config_dir(config: str) -> str:
    return "data" if config == DEFAULT_CONFIG else config


def _write_config(
    root: Path, source: SourceFile, schema: Any, on_rows: Callable[[int], None] | None
) -> list[ReleasedFile]:
    """One JSONL file as one config: a parquet file per split that has rows (`datasets` cannot load an empty one)."""
    writers: dict[str, SplitWriter] = {}
    folder = config_dir(source.config)
    for split, row in _rows(source, on_rows):
        if split not in writers:
            writers[split] = SplitWriter(root / folder / f"{split}-00000-of-00001.parquet", schema)
        writers[split].add(row)
    released = []
    for split in sorted(writers, key=SPLITS.index):
        writer = writers[split]
        writer.close()
        sha, size = file_digest(writer.path)
        name = writer.path.relative_to(root).as_posix()
        released.append(ReleasedFile(name, sha, size, writer.rows, source.config, split, writer.num_bytes))
    return released


def _rows(source: SourceFile, on_rows: Callable[[int], None] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The file's rows in file order, with their split."""
    count = 0
    with source.path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            row = orjson.loads(line)
            split, _ = row_split(row)  # as `prefstudio train` holds rows out: meta.split, else a hash of the prompt
            meta = row.get("meta") or {}
            yield (
                split,
                {
                    "prompt": row["prompt"],
                    "chosen": row["chosen"],
                    "rejected": row["rejected"],
                    "reason": row.get("reason", ""),
                    "meta": orjson.dumps(meta).decode(),
                },
            )
            count += 1
            if on_rows is not None and count % 1000 == 0:
                on_rows(1000)
    if on_rows is not None:
        on_rows(count % 1000)


def check_sources(source: ReleaseSource) -> None:
    """Every file of the snapshot must still be what its record says, before anything is read from it: a file
    damaged on the server is refused, never published."""
    for f in source.files:
        sha, size = file_digest(f.path)
        if (sha, size) != (f.sha256, f.size):
            raise NotFound(
                f"The snapshot's file {f.path.name} no longer matches its record "
                f"(sha256 {sha}, {size:,} bytes; recorded {f.sha256}, {f.size:,} bytes)"
            )


def manifest_bytes(source: ReleaseSource, files: list[ReleasedFile]) -> bytes:
    """release.json: the snapshot it was made from and every file with its sha256, bytes and rows (sorted keys)."""
    manifest = {
        "release": MANIFEST_VERSION,
        "snapshot": {
            "id": source.snapshot_id,
            "name": source.name,
            "project": source.project_slug,
            "format": "conversational" if source.conversational else "standard",
            "sha256": source.sha256,
            "rows": source.rows,
            "bytes": source.size,
            "parts": [
                {"name": f.config, "sha256": f.sha256, "rows": f.rows, "bytes": f.size}
                for f in source.files
                if f.config != DEFAULT_CONFIG
            ],
        },
        "files": [
            {"name": f.name, "sha256": f.sha256, "bytes": f.size, "rows": f.rows, "config": f.config, "split": f.split}
            for f in files
        ],
    }
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
