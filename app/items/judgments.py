"""Import judgments made elsewhere (earlier annotation rounds) so that they count like ours.

Every line is checked as a submitted judgment would be (the project's dimensions, rank mode, strength), against the
item's current candidate round; every error is reported with its line number and a file with any error writes
nothing. A judgment is stored as a submission: a submitted assignment (in canonical display order: the order its
annotator saw is unknown, so the judgment is marked ``imported`` and position figures leave it out), the judgment
and its verdicts; the item's counts and the annotators' tallies follow. Its submit key is derived from the file's
hash and the line, so the same file imported again writes nothing (``already_imported``). Annotators are matched
by name: a new name becomes an ``external`` user (who cannot log in), an existing external user is reused, and an
existing ordinary user only when asked (``as_members``). All become project members.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import IO, Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.tallies import recount_tallies
from app.items.importer import ImportFailed
from app.items.judgment_checks import CHUNK, Errors, JudgmentImportResult, check_lines, chunks, submit_key_of
from app.items.judgment_lines import JudgmentLine, judgment_line
from app.items.judgment_writes import add_annotators, count_items, store_chunk
from app.items.readers import CountingReader, LineError, jsonl_records
from app.kit.errors import Invalid
from app.models import Judgment, Project

__all__ = ["JudgmentImportResult", "import_judgments", "submit_key_of"]

# Reports the work done: ("read", bytes read) while the file is read, ("write", judgments stored) while storing.
Progress = Callable[[str, int], None]


class _HashingReader(io.RawIOBase):
    """Hashes what is read (the file's identity, for the submit keys)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        return len(data)


def _read_lines(
    stream: IO[bytes], project: Project, errors: Errors, progress: Progress | None
) -> tuple[list[tuple[int, JudgmentLine]], int, str]:
    """Every good line, the number of lines, and the file's SHA-256; bad lines and repeated (item, annotator)
    pairs are noted in ``errors``."""
    hashing = _HashingReader(stream)
    counted = io.BufferedReader(
        CountingReader(cast(IO[bytes], hashing), (lambda n: progress("read", n)) if progress else None), 1 << 16
    )
    lines: list[tuple[int, JudgmentLine]] = []
    seen: dict[tuple[str, str], int] = {}
    last = 0
    for line, obj in jsonl_records(counted):
        last = line
        try:
            if isinstance(obj, LineError):
                raise obj
            judgment = judgment_line(obj, project.k)
        except LineError as exc:
            errors.add(line, str(exc))
            continue
        pair = (judgment.item, judgment.annotator)
        if pair in seen:
            errors.add(line, f"item {judgment.item!r} by {judgment.annotator!r} again (first on line {seen[pair]})")
            continue
        seen[pair] = line
        lines.append((line, judgment))
    return lines, last, hashing.digest.hexdigest()


def _already_imported(session: Session, project: Project, sha256: str, lines: list[int]) -> int:
    """How many of these lines this very file already stored in the project (0: never imported)."""
    keys = [submit_key_of(project.id, sha256, line) for line in lines]
    found = 0
    for chunk in chunks(keys):
        found += len(session.scalars(select(Judgment.id).where(Judgment.submit_key.in_(chunk))).all())
        if found:
            break
    return found


def import_judgments(
    session: Session,
    *,
    project: Project,
    stream: IO[bytes],
    skip_existing: bool = False,
    as_members: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> JudgmentImportResult:
    """Import a JSONL file of judgments into ``project``, all or nothing (``ImportFailed`` lists every bad line).
    A file imported before is not imported again (``already_imported``); a dry run checks everything, writes
    nothing."""
    result = JudgmentImportResult(dry_run=dry_run)
    errors = Errors()
    lines, result.lines, result.sha256 = _read_lines(stream, project, errors, progress)
    if not errors.errors and not lines:
        raise Invalid("The file has no judgments")
    if not errors.errors and _already_imported(session, project, result.sha256, [n for n, _ in lines]):
        result.already_imported = True
        return result
    plan = check_lines(session, project, lines, errors, result, skip_existing=skip_existing, as_members=as_members)
    if errors.errors:
        raise ImportFailed(sorted(errors.errors, key=lambda e: e["line"]), result.lines, errors.more)
    result.judgments = len(plan.checked)
    result.items = len({c.item.id for c in plan.checked})
    used = {c.judgment.annotator for c in plan.checked}
    result.annotators_created = [n for n in plan.new_names if n in used]
    result.annotators_matched = sorted(used - set(plan.new_names))
    if dry_run or not plan.checked:
        return result
    add_annotators(session, project, plan)
    for done, chunk in enumerate(chunks(plan.checked), start=1):
        store_chunk(session, project, plan, chunk, result.sha256)
        if progress:
            progress("write", min(done * CHUNK, len(plan.checked)))
    count_items(session, plan.checked)
    recount_tallies(session, project_id=project.id)
    session.flush()
    return result
