"""Import items from JSONL or CSV: validated line by line, all or nothing, duplicates skipped.

JSONL, one item a line: ``{"id": "optional external id", "prompt": "text" | [{"role", "content"}, ...],
"candidates": ["text" | {"text", "model", "params", "seed", "finish_reason", ...}], "meta": {...}}``.
CSV (text prompts only), with a header: ``prompt`` (required), ``id``, ``meta`` (a JSON object), and the
candidates either as ``candidate_1`` … ``candidate_4`` columns or one ``candidates`` column holding a JSON list.

The file is read once, as a stream: every line is checked and every error is reported with its line
number; rows are inserted in batches inside one transaction, which is rolled back if any line was bad,
so a failed import leaves nothing behind. A prompt already in the project (same normalized text, or the
same external id) — or twice in the file — is a duplicate: counted, listed (the first 100) and skipped.
A line is refused, naming the field, for what a database or a JSON reader could not take back: NUL or a lone
surrogate in any text or key, NaN/Infinity anywhere, ``meta``/``params`` nested over 16 levels, integers
outside their columns (seed: 32-bit signed; token counts: 0 to 2^31 - 1).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.items.readers import CSV_CELL_CHARS as CSV_CELL_CHARS
from app.items.readers import MAX_JSON_DEPTH, MAX_PROMPT_CHARS, CountingReader, LineError, csv_records, jsonl_records
from app.kit.errors import Invalid
from app.kit.schemas import MAX_ROW_ID, shown, text_problem
from app.models import Candidate, ImportBatch, Item, Project, User
from app.models.import_batch import MAX_FILENAME

BATCH = 1000
MAX_ERRORS = 1000
# Duplicates are all counted; only the first ones are listed (a file of duplicates would make a huge answer).
MAX_DUPLICATES_LISTED = 100
# Integer columns of a candidate (32 bits on PostgreSQL); generated seeds stay in this range as well.
SEED_RANGE = (-MAX_ROW_ID - 1, MAX_ROW_ID)
TOKENS_RANGE = (0, MAX_ROW_ID)
ROLES = {"system", "user", "assistant"}
CANDIDATE_FIELDS = {"text", "model", "params", "seed", "finish_reason", "prompt_tokens", "completion_tokens"}


class ImportFailed(Invalid):
    """Some lines are bad; ``detail`` lists each with its line number. Nothing was written."""

    def __init__(self, errors: list[dict[str, Any]], lines: int, more: int) -> None:
        summary = f"{len(errors) + more} line(s) have errors; nothing was imported"
        super().__init__({"message": summary, "errors": errors, "more_errors": more, "lines": lines})
        self.errors = errors


@dataclass
class ImportResult:
    lines: int = 0
    created: int = 0
    ready: int = 0
    pending: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_DUPLICATES_LISTED
    duplicate_count: int = 0
    batch_id: int | None = None  # the import batch its items carry

    def duplicate(self, line: int, reason: str) -> None:
        self.duplicate_count += 1
        if len(self.duplicates) < MAX_DUPLICATES_LISTED:
            self.duplicates.append({"line": line, "reason": reason})


def normalize_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


def prompt_hash(prompt: str | list[dict[str, str]]) -> str:
    """The identity of a prompt for de-duplication: case, spacing and Unicode form do not matter."""
    if isinstance(prompt, str):
        canonical: Any = normalize_text(prompt)
    else:
        canonical = [[m["role"], normalize_text(m["content"])] for m in prompt]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LineError(f"{what} must be a non-empty string")
    problem = text_problem(value)
    if problem:
        raise LineError(f"{what} {problem}")
    if len(value) > MAX_PROMPT_CHARS:
        raise LineError(f"{what} is longer than {MAX_PROMPT_CHARS} characters")
    return value


def _check_json(value: Any, where: str) -> None:
    """Refuse, naming the place, what a JSON reader or a database cannot take back from a free-form object:
    NaN and Infinity (not JSON: ``JSON.parse`` and jq reject them), NUL and lone surrogates in keys and strings,
    and nesting deeper than MAX_JSON_DEPTH. Iterative: a deep value cannot exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                raise LineError(f"'{path}' {problem}")
        elif isinstance(node, float) and not math.isfinite(node):
            raise LineError(f"'{path}' is not a finite number (NaN and Infinity are not JSON)")
        elif isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise LineError(f"'{where}' is nested more than {MAX_JSON_DEPTH} levels deep")
            if isinstance(node, list):
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(node, start=1))
                continue
            for key, child in node.items():
                problem = text_problem(key)
                if problem:
                    raise LineError(f"'{path}' has a key that {problem}")
                stack.append((child, f"{path}.{key}", depth + 1))


def _short_text(value: Any, what: str, limit: int) -> str:
    text = str(value)[:limit]
    problem = text_problem(text)
    if problem:
        raise LineError(f"{what} {problem}")
    return text


def _integer(value: Any, what: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise LineError(f"{what} must be an integer from {low} to {high}")
    return value


def _prompt(value: Any) -> str | list[dict[str, str]]:
    if value is None:
        raise LineError("'prompt' is missing")
    if isinstance(value, str):
        return _text(value, "'prompt'")
    if isinstance(value, list):
        if not value:
            raise LineError("'prompt' has no messages")
        messages = []
        for i, m in enumerate(value, start=1):
            if not isinstance(m, dict) or set(m) - {"role", "content"}:
                raise LineError(f'message {i} must be {{"role": ..., "content": ...}}')
            if m.get("role") not in ROLES:
                raise LineError(f"message {i}: role must be one of system, user, assistant")
            messages.append({"role": m["role"], "content": _text(m.get("content"), f"message {i} content")})
        if messages[-1]["role"] != "user":
            raise LineError("the last message of a chat prompt must be from the user")
        return messages
    raise LineError("'prompt' must be a string or a list of messages")


def _candidates(value: Any, k: int) -> list[dict[str, Any]]:
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        raise LineError("'candidates' must be a list")
    if len(value) != k:
        raise LineError(f"{len(value)} candidates given; this project has k = {k} (give {k}, or none)")
    out = []
    for i, c in enumerate(value, start=1):
        if isinstance(c, str):
            c = {"text": c}
        if not isinstance(c, dict):
            raise LineError(f"candidate {i} must be a string or an object with 'text'")
        unknown = set(c) - CANDIDATE_FIELDS
        if unknown:
            raise LineError(f"candidate {i}: unknown field(s) {', '.join(sorted(unknown))}")
        row: dict[str, Any] = {"text": _text(c.get("text"), f"candidate {i} text")}
        if c.get("model") is not None:
            row["model"] = _short_text(c["model"], f"'candidates[{i}].model'", 200)
        if c.get("params") is not None:
            if not isinstance(c["params"], dict):
                raise LineError(f"candidate {i}: 'params' must be an object")
            _check_json(c["params"], f"candidates[{i}].params")
            row["params"] = c["params"]
        for key in ("seed", "prompt_tokens", "completion_tokens"):
            if c.get(key) is not None:
                bounds = SEED_RANGE if key == "seed" else TOKENS_RANGE
                row[key] = _integer(c[key], f"candidate {i}: '{key}'", bounds)
        if c.get("finish_reason") is not None:
            row["finish_reason"] = _short_text(c["finish_reason"], f"'candidates[{i}].finish_reason'", 32)
        out.append(row)
    texts = [" ".join(c["text"].split()) for c in out]
    if len(set(texts)) != len(texts):
        raise LineError("two candidates are identical")
    return out


def _record(obj: Any, k: int) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise LineError("each line must be a JSON object")
    unknown = set(obj) - {"id", "prompt", "candidates", "meta"}
    if unknown:
        raise LineError(f"unknown field(s): {', '.join(sorted(unknown))}")
    external_id = obj.get("id")
    if external_id is not None:
        if not isinstance(external_id, (str, int)) or isinstance(external_id, bool) or str(external_id) == "":
            raise LineError("'id' must be a non-empty string or a number")
        external_id = str(external_id)
        if len(external_id) > 200:
            raise LineError("'id' is longer than 200 characters")
        problem = text_problem(external_id)
        if problem:
            raise LineError(f"'id' {problem}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise LineError("'meta' must be an object")
    _check_json(meta, "meta")
    return {
        "external_id": external_id,
        "prompt": _prompt(obj.get("prompt")),
        "candidates": _candidates(obj.get("candidates"), k),
        "meta": meta,
    }


def _insert_ignoring_duplicates(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert(Item).on_conflict_do_nothing()
    return sqlite_insert(Item).on_conflict_do_nothing()


def _is_csv(filename: str) -> bool:
    return filename.lower().endswith((".csv", ".tsv"))


# One line ready to store: its number, its record and its prompt's hash.
Checked = tuple[int, dict[str, Any], str]


@dataclass
class _LineCheck:
    """What the lines read so far tell about the next one: the errors found, and the prompts and ids seen."""

    result: ImportResult
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_ERRORS
    more_errors: int = 0
    seen_hashes: dict[str, int] = field(default_factory=dict)  # prompt hash → line
    seen_ids: dict[str, int] = field(default_factory=dict)  # external id → line

    def record_of(self, line: int, obj: Any, k: int) -> Checked | None:
        """The line ready to store, or None when it is bad (noted as an error) or a duplicate (counted)."""
        try:
            if isinstance(obj, LineError):
                raise obj
            record = _record(obj, k)
        except LineError as exc:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append({"line": line, "message": shown(str(exc))})  # it may quote the line's text
            else:
                self.more_errors += 1
            return None
        h = prompt_hash(record["prompt"])
        if h in self.seen_hashes:
            self.result.duplicate(line, f"same prompt as line {self.seen_hashes[h]}")
            return None
        external_id = record["external_id"]
        if external_id is not None and external_id in self.seen_ids:
            self.result.duplicate(line, f"same id as line {self.seen_ids[external_id]}")
            return None
        self.seen_hashes[h] = line
        if external_id is not None:
            self.seen_ids[external_id] = line
        return line, record, h


def stored_filename(filename: str) -> str:
    """The uploaded name as stored: what a database column takes (no NUL, no lone surrogate), at most 255."""
    cleaned = "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in filename)
    return cleaned[:MAX_FILENAME]


def _new_import_batch(session: Session, project: Project, filename: str, created_by: User | None) -> int:
    batch = ImportBatch(
        project_id=project.id, filename=stored_filename(filename), created_by_id=created_by.id if created_by else None
    )
    session.add(batch)
    session.flush()
    return batch.id


def _store_batch(session: Session, *, project: Project, batch: list[Checked], result: ImportResult) -> None:
    """Insert a batch of items and their candidates, counting what was created and what was already there."""
    rows = [
        {
            "project_id": project.id,
            "import_batch_id": result.batch_id,
            "external_id": record["external_id"],
            "prompt": record["prompt"],
            "prompt_hash": h,
            "meta": record["meta"],
            "status": "ready" if record["candidates"] else "pending",
            "round": 0,
            "claims": 0,
            "judgment_count": 0,
        }
        for _, record, h in batch
    ]
    # Duplicates of what the project already holds are left out by the unique constraints themselves
    # (no look-up query: inside one long transaction the planner would scan the growing table).
    inserted = dict(
        session.execute(_insert_ignoring_duplicates(session).returning(Item.prompt_hash, Item.id), rows).tuples().all()
    )
    candidate_rows: list[dict[str, Any]] = []
    for line, record, h in batch:
        item_id = inserted.get(h)
        if item_id is None:
            result.duplicate(line, "already in the project (same prompt or id)")
            continue
        candidate_rows.extend(
            {"item_id": item_id, "round": 0, "position": i, "params": {}, **c}
            for i, c in enumerate(record["candidates"])
        )
        result.created += 1
        if record["candidates"]:
            result.ready += 1
        else:
            result.pending += 1
    if candidate_rows:
        session.execute(insert(Candidate), candidate_rows)


def import_items(
    session: Session,
    *,
    project: Project,
    stream: IO[bytes],
    filename: str,
    progress: Callable[[int], None] | None = None,
    created_by: User | None = None,
) -> ImportResult:
    """Import a JSONL or CSV file into ``project`` as one import batch (``result.batch_id``); raises ImportFailed
    on any bad line. The batch row is written with the first items, in the same transaction, and counted at the
    end: the caller's rollback of a failed import takes it away with them."""
    counted = io.BufferedReader(CountingReader(stream, progress), buffer_size=1 << 16)
    records = csv_records(counted) if _is_csv(filename) else jsonl_records(counted)
    result = ImportResult()
    check = _LineCheck(result)
    batch: list[Checked] = []
    for line, obj in records:
        result.lines = line
        checked = check.record_of(line, obj, project.k)
        if checked is None:
            continue
        batch.append(checked)
        if len(batch) >= BATCH:
            if not check.errors:  # once the import is sure to be refused, the rest is validated, not written
                result.batch_id = result.batch_id or _new_import_batch(session, project, filename, created_by)
                _store_batch(session, project=project, batch=batch, result=result)
            batch = []
    if check.errors:
        raise ImportFailed(check.errors, result.lines, check.more_errors)
    if result.lines == 0:
        raise Invalid("The file is empty")
    result.batch_id = result.batch_id or _new_import_batch(session, project, filename, created_by)
    if batch:
        _store_batch(session, project=project, batch=batch, result=result)
    counts = {"added": result.created, "duplicates": result.duplicate_count}
    session.execute(update(ImportBatch).where(ImportBatch.id == result.batch_id).values(**counts))
    session.flush()
    return result
