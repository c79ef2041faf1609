"""Reading a foreign file as records: JSONL (one record a line) or one JSON array of records (Argilla's and Label
Studio's exports), each record with the line it starts on."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from app.items.readers import CountingReader, LineError, jsonl_records

# (line the record starts on, its number in a JSON array or None for JSONL, the record or a LineError)
Record = tuple[int, int | None, Any]


def _first_byte(stream: io.BufferedReader[Any]) -> bytes:
    """The first byte that is not white space or a byte-order mark (b"" for an empty file)."""
    head = stream.peek(4096)
    return head.lstrip(b"\xef\xbb\xbf").lstrip()[:1]


def source_records(stream: IO[bytes], progress: Callable[[int], None] | None = None) -> Iterator[Record]:
    """The file's records in order; a file that opens with ``[`` is one JSON array, any other is JSONL.
    ``progress`` is told the bytes read so far."""
    buffered = io.BufferedReader(CountingReader(stream, progress), 1 << 16)
    if _first_byte(buffered) == b"[":
        yield from _array_records(buffered.read())
        return
    for line, obj in jsonl_records(buffered):
        yield line, None, obj


def _array_records(data: bytes) -> Iterator[Record]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield 1 + data.count(b"\n", 0, exc.start), None, LineError("not valid UTF-8")
        return
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    number = 0
    lines = _Lines(text)
    while True:
        at = _skip_space(text, at)
        if at < len(text) and text[at] == "]":
            if text[at + 1 :].strip():
                yield lines.at(at + 1), None, LineError("bad JSON: text after the closing ']'")
            return
        if number:
            if at >= len(text) or text[at] != ",":
                yield lines.at(at), None, LineError("bad JSON: expected ',' or ']' between records")
                return
            at = _skip_space(text, at + 1)
        try:
            obj, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            yield exc.lineno, number + 1, LineError(f"bad JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            return
        except RecursionError:
            yield lines.at(at), number + 1, LineError("bad JSON: nested too deeply to read")
            return
        number += 1
        yield lines.at(at), number, obj
        at = end


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


class _Lines:
    """The line of a position, counted on from the last one asked (positions only move forward)."""

    def __init__(self, text: str) -> None:
        self.text, self.line, self.counted = text, 1, 0

    def at(self, position: int) -> int:
        self.line += self.text.count("\n", self.counted, position)
        self.counted = position
        return self.line
