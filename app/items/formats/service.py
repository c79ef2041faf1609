"""Importing a foreign file: every record converted and checked, then its items stored by the items import and its
judgments by the judgments import, in the caller's transaction — all or nothing.

Records are converted into two files written aside (spooled to disk past a few MB): one item a line for
``import_items`` and one judgment a line for ``import_judgments``. Both report errors by their own lines; each line
of theirs maps back to the record it came from, so every error names the line of the file that was sent. A record
whose prompt is already in the project, or earlier in the file, is a duplicate: counted and listed, and its
judgments are left out with it (they were made on other responses, or would judge the same item twice).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.items.formats.base import Converted, FormatContext
from app.items.formats.detect import detect_format
from app.items.formats.reading import source_records
from app.items.formats.registry import AUTO, CONVERTERS, NATIVE, PAIRS_ONLY
from app.items.importer import MAX_DUPLICATES_LISTED, ImportFailed, ImportResult, import_items, prompt_hash
from app.items.judgment_checks import Errors
from app.items.judgments import import_judgments
from app.items.readers import LineError
from app.kit.errors import Invalid
from app.models import Item, Project, User

SPOOL_BYTES = 8 << 20
MAX_EXTERNAL_ID = 200
# A name given to the external annotator: it becomes a username (``name`` or ``name:<user>``, at most 64 characters).
ANNOTATOR_NAME = re.compile(r"^[^\s:]{1,40}$")


@dataclass
class FormatImportResult:
    """What an import of a foreign file did: the items (as ``ImportResult``) and the judgments."""

    format: str
    lines: int = 0
    records: int = 0
    created: int = 0
    ready: int = 0
    pending: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    duplicate_count: int = 0
    batch_id: int | None = None
    judgments: int = 0
    annotators_created: list[str] = field(default_factory=list)
    annotators_matched: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # records that bring nothing, with why
    skipped_count: int = 0
    unjudged: list[dict[str, Any]] = field(default_factory=list)  # items that came without a judgment, with why
    unjudged_count: int = 0

    def note(self, kind: str, line: int, reason: str) -> None:
        """Count (and list the first few of) the duplicate, skipped or unjudged records."""
        setattr(self, f"{kind}_count", getattr(self, f"{kind}_count") + 1)
        listed: list[dict[str, Any]] = getattr(self, "duplicates" if kind == "duplicate" else kind)
        if len(listed) < MAX_DUPLICATES_LISTED:
            listed.append({"line": line, "reason": reason})


@dataclass
class _Written:
    """The two files the records became, and where each of their lines came from."""

    items: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(SPOOL_BYTES))
    judgments: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(SPOOL_BYTES))
    item_lines: list[tuple[int, str]] = field(default_factory=list)  # (source line, message prefix) per item line
    judgment_lines: list[tuple[int, str, str]] = field(default_factory=list)  # (line, prefix, item id) per judgment
    seen_prompts: dict[str, int] = field(default_factory=dict)
    seen_ids: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        self.items.close()
        self.judgments.close()


def check_project(project: Project, fmt: str, annotator: str | None) -> None:
    """Refuse, before reading, what no record of the format could give this project, and a bad annotator name."""
    if fmt not in CONVERTERS:
        raise Invalid(f"Unknown format {fmt!r}")
    if annotator is not None and not ANNOTATOR_NAME.match(annotator):
        raise Invalid("The annotator's name must be 1 to 40 characters, without spaces or ':'")
    if fmt in PAIRS_ONLY and project.k != 2:
        raise Invalid(f"A {fmt} file holds pairs of responses; this project has k = {project.k} (it needs k = 2)")
    if project.strength and project.k == 2:
        raise Invalid(
            f"This project asks how much better one response is (strength); a {fmt} file does not say. "
            "Import it into a project that does not ask for strength."
        )


def _external_id(fmt: str, record: Converted) -> str:
    """The item's id: the source's own when it has one, else the format and a hash of the prompt (stable)."""
    given = record.external_id
    if given and len(given) <= MAX_EXTERNAL_ID:
        return given
    return f"{fmt}:{prompt_hash(record.prompt)[:24]}"


def _write(written: _Written, result: FormatImportResult, fmt: str, line: int, prefix: str, record: Converted) -> None:
    """Write a converted record to the two files, unless it is skipped or a duplicate of an earlier one."""
    if record.skipped:
        result.note("skipped", line, record.skipped)
        return
    external_id = _external_id(fmt, record)
    digest = prompt_hash(record.prompt)
    if digest in written.seen_prompts:
        result.note("duplicate", line, f"same prompt as line {written.seen_prompts[digest]}")
        return
    if external_id in written.seen_ids:
        result.note("duplicate", line, f"same id as line {written.seen_ids[external_id]}")
        return
    written.seen_prompts[digest], written.seen_ids[external_id] = line, line
    item = {"id": external_id, "prompt": record.prompt, "candidates": record.candidates, "meta": record.meta}
    written.items.write(orjson.dumps(item) + b"\n")
    written.item_lines.append((line, prefix))
    if record.unjudged:
        result.note("unjudged", line, record.unjudged)
    for judgment in record.judgments:
        row: dict[str, Any] = {"item": external_id, "annotator": judgment.annotator, "verdicts": judgment.verdicts}
        if judgment.reason:
            row["reason"] = judgment.reason
        if judgment.created_at:
            row["created_at"] = judgment.created_at
        written.judgments.write(orjson.dumps(row) + b"\n")
        written.judgment_lines.append((line, prefix, external_id))


def _convert_all(
    stream: IO[bytes],
    fmt: str,
    ctx: FormatContext,
    result: FormatImportResult,
    progress: Callable[[int], None] | None,
) -> _Written:
    """Convert every record; raise ImportFailed listing every bad one."""
    convert = CONVERTERS[fmt]
    errors = Errors()
    written = _Written()
    for line, number, obj in source_records(stream, progress):
        result.lines = max(result.lines, line)
        result.records += 1
        prefix = f"record {number}: " if number is not None else ""
        try:
            if isinstance(obj, LineError):
                raise obj
            record = convert(obj, ctx)
            twice = _twice([j.annotator for j in record.judgments])
            if twice:
                raise LineError(f"{twice!r} judges this record twice: keep one of their annotations")
        except LineError as exc:
            errors.add(line, prefix + str(exc))
            continue
        if not errors.errors:  # once the import is sure to be refused, records are checked, not written
            _write(written, result, fmt, line, prefix, record)
    if errors.errors:
        written.close()
        raise ImportFailed(errors.errors, result.lines, errors.more)
    if result.records == 0:
        written.close()
        raise Invalid("The file is empty")
    return written


def _twice(names: list[str]) -> str | None:
    """A name that comes twice in the list (one record's annotators), if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _mapped(exc: ImportFailed, origins: list[tuple[int, str]], lines: int) -> ImportFailed:
    """The error of an import of a written file, with each line of that file turned into the source's."""
    errors = []
    for error in exc.errors:
        line, prefix = origins[error["line"] - 1]
        errors.append({"line": line, "message": prefix + str(error["message"])})
    return ImportFailed(sorted(errors, key=lambda e: e["line"]), lines, int(exc.detail["more_errors"]))


def _refuse_members(session: Session, names: set[str], fmt: str) -> None:
    """Judgments of a foreign file are an external annotator's: a name that is one of our users is refused."""
    taken = sorted(
        session.scalars(select(User.username).where(User.username.in_(sorted(names)), User.external.is_(False)))
    )
    if taken:
        raise Invalid(
            f"{', '.join(map(repr, taken[:5]))}: already a prefstudio user; the judgments of a {fmt} file belong to "
            "an external annotator: name another one (--annotator, annotator=)"
        )


def _annotators(written: _Written, created: set[str]) -> set[str]:
    written.judgments.seek(0)
    return {
        orjson.loads(raw)["annotator"]
        for raw, (_, _, item) in zip(written.judgments, written.judgment_lines, strict=True)
        if item in created
    }


def _store_judgments(
    session: Session, project: Project, written: _Written, created: set[str], result: FormatImportResult
) -> None:
    """Import the judgments of the items this import created."""
    kept: list[tuple[int, str]] = []
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as file:
        written.judgments.seek(0)
        for raw, (line, prefix, item) in zip(written.judgments, written.judgment_lines, strict=True):
            if item in created:
                file.write(raw)
                kept.append((line, prefix))
        if not kept:
            return
        file.seek(0)
        try:
            done = import_judgments(session, project=project, stream=file)
        except ImportFailed as exc:
            raise _mapped(exc, kept, result.lines) from exc
    result.judgments = done.judgments
    result.annotators_created, result.annotators_matched = done.annotators_created, done.annotators_matched


def import_in_format(
    session: Session,
    *,
    project: Project,
    stream: IO[bytes],
    fmt: str,
    filename: str,
    annotator: str | None = None,
    created_by: User | None = None,
    progress: Callable[[int], None] | None = None,
) -> FormatImportResult:
    """Import a file of a foreign format (``registry.CONVERTERS``) as items and external annotators' judgments,
    all or nothing (``ImportFailed`` lists every bad record with its line); the caller commits."""
    check_project(project, fmt, annotator)
    if filename.lower().endswith((".csv", ".tsv")):
        raise Invalid(f"A {fmt} file is JSON or JSONL, not CSV")
    result = FormatImportResult(format=fmt)
    written = _convert_all(stream, fmt, FormatContext.of(project, annotator), result, progress)
    try:
        if not written.item_lines:
            return result
        written.items.seek(0)
        try:
            items = import_items(
                session, project=project, stream=written.items, filename=filename, created_by=created_by
            )
        except ImportFailed as exc:
            raise _mapped(exc, written.item_lines, result.lines) from exc
        result.created, result.ready, result.pending, result.batch_id = (
            items.created,
            items.ready,
            items.pending,
            items.batch_id,
        )
        for duplicate in items.duplicates:  # already in the project: the written file has no in-file duplicates
            result.note("duplicate", written.item_lines[duplicate["line"] - 1][0], duplicate["reason"])
        result.duplicate_count += items.duplicate_count - len(items.duplicates)
        created = set(session.scalars(select(Item.external_id).where(Item.import_batch_id == items.batch_id)))
        _refuse_members(session, _annotators(written, {c for c in created if c}), fmt)
        _store_judgments(session, project, written, {c for c in created if c}, result)
    finally:
        written.close()
    return result


def import_file_as(
    session: Session,
    *,
    project: Project,
    stream: IO[bytes],
    filename: str,
    fmt: str = NATIVE,
    annotator: str | None = None,
    created_by: User | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult | FormatImportResult:
    """Import a file in ``fmt``: prefstudio's own (``import_items``), another tool's (``import_in_format``), or
    ``auto``: whichever the first record shows."""
    if fmt == AUTO:
        fmt = detect_format(stream, filename)
    if fmt == NATIVE:
        return import_items(
            session, project=project, stream=stream, filename=filename, created_by=created_by, progress=progress
        )
    return import_in_format(
        session,
        project=project,
        stream=stream,
        fmt=fmt,
        filename=filename,
        annotator=annotator,
        created_by=created_by,
        progress=progress,
    )
