"""The weights digest: deterministic, sensitive to every byte and name, None where there are no local weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.registry.weights import weights_digest


def checkpoint(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "model.safetensors").write_bytes(b"\x00\x01weights" * 1000)
    (root / "shard").mkdir()
    (root / "shard" / "pytorch_model-00002.bin").write_bytes(b"second shard")
    (root / "adapter_model.json").write_bytes(b"{}")  # adapter_model.*, whatever its suffix
    (root / "config.json").write_text('{"hidden_size": 128}')
    (root / "tokenizer.json").write_text("{}")
    return root


def test_same_files_same_digest_wherever_they_lie(tmp_path: Path) -> None:
    a = weights_digest(checkpoint(tmp_path / "a"))
    b = weights_digest(checkpoint(tmp_path / "b"))
    assert a is not None and len(a) == 64
    assert a == b
    assert weights_digest(str(tmp_path / "a")) == a


def test_one_byte_changes_the_digest(tmp_path: Path) -> None:
    root = checkpoint(tmp_path / "m")
    before = weights_digest(root)
    data = bytearray((root / "model.safetensors").read_bytes())
    data[5000] ^= 1
    (root / "model.safetensors").write_bytes(bytes(data))
    assert weights_digest(root) != before


def test_renaming_a_weights_file_changes_the_digest(tmp_path: Path) -> None:
    root = checkpoint(tmp_path / "m")
    before = weights_digest(root)
    (root / "shard" / "pytorch_model-00002.bin").rename(root / "shard" / "pytorch_model-00003.bin")
    assert weights_digest(root) != before


def test_other_files_do_not_count(tmp_path: Path) -> None:
    root = checkpoint(tmp_path / "m")
    before = weights_digest(root)
    (root / "config.json").write_text('{"hidden_size": 256}')
    (root / "README.md").write_text("notes")
    assert weights_digest(root) == before


def test_adapter_files_count(tmp_path: Path) -> None:
    root = checkpoint(tmp_path / "m")
    before = weights_digest(root)
    (root / "adapter_model.json").write_bytes(b'{"r": 8}')
    assert weights_digest(root) != before


def test_none_without_local_weights(tmp_path: Path) -> None:
    assert weights_digest(tmp_path / "missing") is None
    assert weights_digest("org/hub-model-name") is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    assert weights_digest(tmp_path / "empty") is None
    (tmp_path / "file.safetensors").write_bytes(b"x")
    assert weights_digest(tmp_path / "file.safetensors") is None  # a file, not a directory


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_none_when_unreadable(tmp_path: Path) -> None:
    root = checkpoint(tmp_path / "m")
    (root / "model.safetensors").chmod(0)
    try:
        assert weights_digest(root) is None
    finally:
        (root / "model.safetensors").chmod(0o600)
