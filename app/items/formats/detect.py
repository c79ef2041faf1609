"""Telling a file's format from its first record (``format=auto``): the keys each tool writes are distinctive
enough that one record decides."""

from __future__ import annotations

import json
from typing import IO, Any

from app.kit.errors import Invalid

PEEK_BYTES = 1 << 20


def format_of_record(record: Any) -> str | None:
    """The format a record is written in, or None when it looks like none of them."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if "data" in keys and keys & {"annotations", "predictions"}:
        return "label-studio"
    if "fields" in keys and keys & {"responses", "suggestions"} or any(k.endswith(".responses") for k in keys):
        return "argilla"
    if "completions" in keys and "instruction" in keys or keys & {"score_chosen", "score_rejected"}:
        return "ultrafeedback"
    if {"chosen", "rejected"} <= keys:
        chosen = record["chosen"]
        if "prompt" not in keys and isinstance(chosen, str) and chosen.lstrip().startswith("Human:"):
            return "hh-rlhf"
        return "trl"
    if "prompt" in keys:
        return "native"
    return None


def _first_record(head: bytes) -> Any:
    text = head.decode("utf-8-sig", errors="ignore").lstrip()
    if text.startswith("["):
        first = len(text) - len(text[1:].lstrip())  # the first record, after "[" and any white space
        return json.JSONDecoder().raw_decode(text, first)[0]
    line = next((line for line in text.splitlines() if line.strip()), "")
    return json.loads(line)


def detect_format(stream: IO[bytes], filename: str) -> str:
    """The format of the file (read from its first record; the stream is put back at its start). A CSV file is
    prefstudio's own."""
    if filename.lower().endswith((".csv", ".tsv")):
        return "native"
    if not stream.seekable():
        raise Invalid("Name the file's format: it cannot be told from a stream that cannot be re-read")
    start = stream.tell()
    head = stream.read(PEEK_BYTES)
    stream.seek(start)
    try:
        found = format_of_record(_first_record(head))
    except (json.JSONDecodeError, RecursionError, ValueError):
        found = None
    if found is None:
        raise Invalid("The format cannot be told from the file's first record: name it (--format, format=)")
    return found
