"""What a release is made of (a snapshot's files) and what it holds (its files), as plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONFIG = "default"


@dataclass(frozen=True)
class SourceFile:
    """One JSONL file of the snapshot: the main one (config ``default``) or a part."""

    config: str
    path: Path
    sha256: str
    rows: int
    size: int
    kind: str = "pairs"
    dimension: str = ""


@dataclass(frozen=True)
class ReleaseSource:
    """What a release is made of, read from the database: the snapshot, its card and its files."""

    snapshot_id: int
    name: str
    project_slug: str
    project_name: str
    conversational: bool
    dimension: str
    sha256: str
    rows: int
    size: int
    card: str
    files: list[SourceFile] = field(default_factory=list)


@dataclass(frozen=True)
class ReleasedFile:
    """A file of the release: its path in the directory, sha256, bytes and (parquet) rows of which split."""

    name: str
    sha256: str
    size: int
    rows: int | None = None
    config: str | None = None
    split: str | None = None
    num_bytes: int = 0  # parquet: the Arrow (in-memory) size of the rows
