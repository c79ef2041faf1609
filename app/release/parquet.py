"""The parquet side of a release: the columns, how files are written (byte for byte the same every time), and the
same columns as the dataset card's ``features``.

pyarrow is imported inside the functions: only ``prefstudio release`` and ``prefstudio verify`` need it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

COLUMNS = ("prompt", "chosen", "rejected", "reason", "meta")
ROW_GROUP_ROWS = 10_000
# Fixed writer options: the same rows give the same bytes. `created_by` names the pyarrow version, constant on one
# installation; nothing time-dependent is written.
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "version": "2.6",
    "data_page_version": "1.0",
    "use_dictionary": True,
    "write_statistics": True,
    "store_schema": True,
    "write_page_index": False,
}
MESSAGE_FIELDS = ("role", "content")


def arrow_schema(conversational: bool) -> Any:
    """The columns: text, or (conversational) lists of ``{role, content}`` messages; ``meta`` is a JSON string."""
    import pyarrow as pa

    text = pa.list_(pa.struct([(f, pa.string()) for f in MESSAGE_FIELDS])) if conversational else pa.string()
    return pa.schema(
        [("prompt", text), ("chosen", text), ("rejected", text), ("reason", pa.string()), ("meta", pa.string())]
    )


def card_features(conversational: bool) -> list[dict[str, Any]]:
    """The columns as the card's ``dataset_info.features`` (the notation of ``datasets`` ≥ 4)."""

    def text() -> dict[str, Any]:  # a new object per column: shared ones would become YAML anchors and aliases
        return (
            {"list": [{"name": f, "dtype": "string"} for f in MESSAGE_FIELDS]}
            if conversational
            else {"dtype": "string"}
        )

    return [{"name": c, **text()} for c in ("prompt", "chosen", "rejected")] + [
        {"name": "reason", "dtype": "string"},
        {"name": "meta", "dtype": "string"},
    ]


class SplitWriter:
    """One split's parquet file, written in row groups of ``ROW_GROUP_ROWS`` as the rows come."""

    def __init__(self, path: Path, schema: Any) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.num_bytes = 0  # the Arrow (in-memory) size, as the card's num_bytes counts it
        self._buffer: list[dict[str, Any]] = []
        self._writer: Any = None

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, **WRITER_OPTIONS)
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows
        self.num_bytes += table.nbytes
        self._buffer = []

    def close(self) -> None:
        if self._buffer or self._writer is None:
            self._flush()
        self._writer.close()


def parquet_rows(path: Path) -> int:
    """The row count a parquet file's footer records (ValueError-like errors from pyarrow if it is no parquet)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def file_digest(path: Path) -> tuple[str, int]:
    """A file's sha256 and size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
