"""Reading an import file as a stream of (line number, JSON value or LineError): JSONL and CSV, counting bytes."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

MAX_PROMPT_CHARS = 200_000
# How deep ``meta`` and a candidate's ``params`` may nest (the object itself is level 1): real metadata is a
# few levels; a bound keeps every reader of the row (the export, jsonb, SQLite's JSON functions) far from theirs.
MAX_JSON_DEPTH = 16
# A CSV cell may hold a whole prompt, or a JSON list of up to four candidates (escaped), each as long as a prompt;
# Python's csv module stops at 131,072 characters unless told otherwise (a process-wide setting, only raised).
CSV_CELL_CHARS = 8 * MAX_PROMPT_CHARS
csv.field_size_limit(max(csv.field_size_limit(), CSV_CELL_CHARS))


class LineError(Exception):
    pass


class CountingReader(io.RawIOBase):
    """Counts bytes read, for the progress bar."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self.raw, self.progress, self.read_bytes = raw, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.read_bytes += n
        if self.progress and n:
            self.progress(self.read_bytes)
        return n


def jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    for n, raw in enumerate(stream, start=1):
        try:
            line = decoder.decode(raw).lstrip("\ufeff") if n == 1 else decoder.decode(raw)
        except UnicodeDecodeError:
            decoder.reset()
            yield n, LineError("not valid UTF-8")
            continue
        if not line.strip():
            continue
        yield n, _parse(line, "bad JSON")


def _parse(text: str, what: str) -> Any:
    """``text`` as JSON, or a LineError saying why not (also for what the parser cannot take)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return LineError(f"{what}: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return LineError(f"{what}: nested too deeply to read (at most {MAX_JSON_DEPTH} levels are allowed)")
    except ValueError:  # Python's cap on the digits of an integer
        return LineError(f"{what}: a number has too many digits")


def csv_records(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    try:
        header = reader.fieldnames or []
    except UnicodeDecodeError:
        yield 1, LineError("not valid UTF-8")
        return
    if "prompt" not in header:
        yield 1, LineError("the CSV header needs a 'prompt' column")
        return
    allowed = {"id", "prompt", "meta", "candidates"} | {f"candidate_{i}" for i in range(1, 5)}
    unknown = [h for h in header if h not in allowed]
    if unknown:
        yield 1, LineError(f"unknown column(s): {', '.join(unknown)}")
        return
    while True:
        first = reader.line_num + 1  # the row's first line (a quoted cell may span several)
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            too_long = isinstance(exc, csv.Error) and "field limit" in str(exc)
            yield (
                first,
                LineError(f"a cell is longer than {CSV_CELL_CHARS:,} characters" if too_long else f"bad CSV: {exc}"),
            )
            return
        n = reader.line_num
        obj: dict[str, Any] = {"prompt": row.get("prompt") or None}
        if row.get("id"):
            obj["id"] = row["id"]
        for cell in ("meta", "candidates"):
            if row.get(cell):
                obj[cell] = _parse(row[cell], f"bad JSON in the '{cell}' cell")
        if not row.get("candidates"):
            cands = [row.get(f"candidate_{i}") for i in range(1, 5)]
            obj["candidates"] = [c for c in cands if c]
        bad = next((v for v in obj.values() if isinstance(v, LineError)), None)
        yield n, bad or obj
