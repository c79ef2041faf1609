"""The digest of a model's weights: what a registered model and the candidates it wrote are identified by."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
CHUNK = 1 << 20


def is_weights_file(relative: Path) -> bool:
    """Weights files: ``*.safetensors``, ``*.bin``, ``*.pt`` and a PEFT adapter's ``adapter_model.*``."""
    return relative.suffix in WEIGHT_SUFFIXES or relative.name.startswith("adapter_model.")


def weights_files(root: Path) -> list[Path]:
    """The weights files under ``root``, sorted by their path relative to it (so the digest is deterministic)."""
    found = [p for p in root.rglob("*") if p.is_file() and is_weights_file(p.relative_to(root))]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def weights_digest(path: str | Path) -> str | None:
    """sha256 over each weights file's relative name and bytes, in order; None when ``path`` is not a readable
    local directory holding weights (a hub name, a missing or unreadable directory)."""
    root = Path(path)
    try:
        if not root.is_dir():
            return None
        files = weights_files(root)
        if not files:
            return None
        digest = hashlib.sha256()
        for file in files:
            name = file.relative_to(root).as_posix().encode()
            # The name's length first, so that moving bytes between a name and a file changes the digest.
            digest.update(len(name).to_bytes(8, "big") + name)
            digest.update(file.stat().st_size.to_bytes(8, "big"))
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None
