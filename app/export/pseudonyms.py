"""Annotator pseudonyms: an HMAC of (project, user) under a random key of this installation.

The key is made on first use and kept in the data directory (beside the snapshot files, which carry its
pseudonyms), never derived from the app's secret key, which may be the public development one. Snapshots
written before the key existed keep the pseudonyms they were written with: their files are immutable; only new
exports use this key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import uuid
from pathlib import Path

KEY_FILE = ".pseudonym-key"
PATTERN = re.compile(r"a_[0-9a-f]{12}")


def pseudonym_key(data_dir: Path) -> bytes:
    """This installation's pseudonym key, made if there is none yet. Processes that race to make it all end up
    with the one that was linked into place first (a hard link never replaces a file, and it appears whole)."""
    path = Path(data_dir) / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{KEY_FILE}-{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:  # another process was first: its key stands
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise RuntimeError(f"{path} does not hold a pseudonym key (64 hex digits)")
    return key


def pseudonym(key: bytes, project_id: int, user_id: int) -> str:
    """A stable id for an annotator in one project's exports that does not reveal who it is."""
    return "a_" + hmac.new(key, f"{project_id}:{user_id}".encode(), hashlib.sha256).hexdigest()[:12]


def looks_like_pseudonym(value: str) -> bool:
    return PATTERN.fullmatch(value) is not None
