"""Snapshots: an export frozen into an immutable file, named by its sha256, with a data card.

An admin records a snapshot (state "pending"); the worker (or the command line) writes it: the pairs are
streamed into a temporary file, fsynced, renamed into place and only then marked "ready". A crash leaves a
temporary file, never a served one; the next writer of the same snapshot removes what a dead one left.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database
from app.export import pseudonyms
from app.export.card import data_card
from app.export.deps import ExportAccess, project_for_export
from app.export.filters import Rules, resolve
from app.export.rows import jsonl_lines, rounds_of
from app.export.schemas import ExportFilter, PartsWanted, SnapshotPart
from app.jobs import service as jobs
from app.kit import activity
from app.kit.errors import Conflict, Invalid, NotFound
from app.kit.schemas import MAX_ROW_ID
from app.models import OVERALL, Project, Snapshot, utcnow
from app.ops import metrics
from app.pii.schemas import PiiDecision
from app.pii.service import PiiGate, check_decision
from app.webhooks import events as webhook_events

ABANDONED_AFTER_S = 600  # a live writer touches its temporary file continuously


def create_snapshot(
    session: Session,
    *,
    project: Project,
    filters: ExportFilter,
    name: str,
    key: bytes,
    created_by_id: int | None,
    enqueue: bool = True,
    parts: PartsWanted | None = None,
    pii: PiiDecision | None = None,
) -> Snapshot:
    """Record a snapshot to be written by the worker (state "pending"); the filter is checked now (an admin's:
    annotators may be named by username) and stored naming annotators by pseudonym only; ``parts``: the files
    to write beside the main one; ``pii``: what to do with personal data (refused, 422, if the export has some
    and no choice covers it)."""
    rules = resolve(session, project=project, filters=filters, key=key, by_admin=True)  # fails here, not later
    decision = pii or PiiDecision()
    check_decision(session, rules=rules, decision=decision)
    snapshot = Snapshot(
        project_id=project.id,
        created_by_id=created_by_id,
        name=name.strip(),
        format=filters.format,
        filters=rules.public_dump() | {"pii": decision.stored()},
        state="pending",
        parts=declared_parts(project, filters, parts or PartsWanted()),
    )
    session.add(snapshot)
    session.flush()
    if not enqueue:  # the caller writes it (command line)
        return snapshot
    job = jobs.enqueue(
        session,
        kind="snapshot",
        project_id=project.id,
        params={"snapshot_id": snapshot.id},
        created_by_id=created_by_id,
    )
    snapshot.job_id = job.id
    session.flush()
    return snapshot


def declared_parts(project: Project, filters: ExportFilter, wanted: PartsWanted) -> list[dict[str, Any]]:
    """The parts a snapshot will have, before it is written: a ties file of its dimension, and a file for each
    other dimension of the project."""
    parts: list[dict[str, Any]] = []
    if wanted.ties:
        parts.append(SnapshotPart(name="ties", kind="ties", dimension=filters.dimension).model_dump())
    if wanted.per_dimension:
        for dim in [OVERALL, *project.dimension_keys]:
            if dim != filters.dimension:
                parts.append(SnapshotPart(name=f"dimension-{dim}", kind="dimension", dimension=dim).model_dump())
    return parts


def part_rules(rules: Rules, session: Session, part: dict[str, Any]) -> Rules:
    """The rules of one part of a snapshot: the snapshot's, on the part's dimension, or for its ties."""
    filters = rules.filters
    if part["kind"] == "dimension":
        filters = filters.model_copy(update={"dimension": part["dimension"]})
    made = resolve(session, project=rules.project, filters=filters, key=rules.key, excluded=rules.excluded)
    made.named = rules.named
    made.ties = part["kind"] == "ties"
    return made


def list_snapshots(session: Session, *, project: Project, limit: int = 100) -> list[Snapshot]:
    """The project's snapshots, newest first."""
    return list(
        session.scalars(
            select(Snapshot)
            .where(Snapshot.project_id == project.id)
            .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
            .limit(limit)
        )
    )


def get_snapshot(session: Session, *, snapshot_id: int) -> Snapshot:
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound("No such snapshot")
    return snapshot


def project_snapshot(session: Session, *, project: Project, snapshot_id: int) -> Snapshot:
    """A snapshot of ``project`` (another project's is not found here)."""
    snapshot = get_snapshot(session, snapshot_id=snapshot_id)
    if snapshot.project_id != project.id:
        raise NotFound("No such snapshot")
    return snapshot


def latest_snapshot(session: Session, *, project_id: int) -> Snapshot:
    snapshot = session.scalar(
        select(Snapshot)
        .where(Snapshot.project_id == project_id, Snapshot.state == "ready")
        .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
        .limit(1)
    )
    if snapshot is None:
        raise NotFound("This project has no ready snapshot yet")
    return snapshot


def snapshot_for_reader(session: Session, *, reference: str, access: ExportAccess, project: str | None) -> Snapshot:
    """The snapshot an export reader asks for by id or as "latest" (of the token's project, or of ``project``
    for an admin). Ids are ASCII digits within the column's range; a token learns nothing of other projects."""
    if reference == "latest":
        if access.token is not None and access.token.project_id is not None:
            return latest_snapshot(session, project_id=access.token.project_id)
        if not project:
            raise Invalid("Say which project: /api/v1/snapshots/latest?project=SLUG")
        return latest_snapshot(session, project_id=project_for_export(session, slug=project, access=access).id)
    # ASCII digits only ("²".isdigit() is true, int("²") fails) and within the column's range (SQLite overflows).
    plain = reference.isascii() and reference.isdigit() and len(reference) <= 10
    if not plain or int(reference) > MAX_ROW_ID:
        raise NotFound("No such snapshot")
    snapshot = session.get(Snapshot, int(reference))
    owner = session.get(Project, snapshot.project_id) if snapshot is not None else None
    access.check(owner)
    if snapshot is None:
        raise NotFound("No such snapshot")
    return snapshot


def project_slug(session: Session, snapshot: Snapshot) -> str:
    """The slug of the snapshot's project ("" if it is gone)."""
    return session.scalar(select(Project.slug).where(Project.id == snapshot.project_id)) or ""


def snapshot_path(snapshot: Snapshot, settings: Settings) -> Path:
    """The file of a ready snapshot; Conflict while it is being written, NotFound if it failed."""
    if snapshot.state == "pending":
        raise Conflict("The snapshot is still being written")
    if snapshot.state != "ready" or not snapshot.file_name:
        raise NotFound(f"The snapshot failed: {snapshot.error or 'no file'}")
    path = Path(settings.data_dir) / snapshot.file_name
    if not path.is_file() or path.stat().st_size != snapshot.size_bytes:
        raise NotFound("The snapshot's file is missing or damaged on the server")
    return path


def part_path(snapshot: Snapshot, name: str, settings: Settings) -> tuple[Path, dict[str, Any]]:
    """The file of a ready snapshot's part, and the part; NotFound for a part it does not have."""
    snapshot_path(snapshot, settings)  # the snapshot's state, as for its main file
    part = next((p for p in snapshot.parts or [] if p.get("name") == name and p.get("file_name")), None)
    if part is None:
        raise NotFound("This snapshot has no such part")
    path = Path(settings.data_dir) / part["file_name"]
    if not path.is_file() or path.stat().st_size != part["bytes"]:
        raise NotFound("The part's file is missing or damaged on the server")
    return path, part


def write_snapshot(
    db: Database, *, snapshot_id: int, settings: Settings, beat: Callable[[], None] | None = None
) -> str:
    """Write a pending snapshot: stream the pairs into a temporary file, fsync, rename into place, then mark it
    ready with its sha256, row count and data card. A crash leaves a temporary file, never a served one."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(data_dir, snapshot_id)
    key = pseudonyms.pseudonym_key(data_dir)
    with db.session(write=False) as session:
        if db.is_postgres:  # one consistent view of the data for the whole file
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        snapshot = session.get(Snapshot, snapshot_id)
        if snapshot is None:
            raise NotFound("No such snapshot")
        if snapshot.state != "pending":
            return snapshot.state
        project = session.get(Project, snapshot.project_id)
        assert project is not None
        filters, decision = stored_filter(snapshot)
        # Written by the app itself: a filter stored before annotators were stored by pseudonym still resolves.
        rules = resolve(session, project=project, filters=filters, key=key, by_admin=True)
        drops: Counter[str] = Counter()
        pace = activity.pacer(data_dir, settings.export_yield_ms / 1000)
        gate = PiiGate(decision)
        final, sha, rows, size = _write_file(session, data_dir, snapshot_id, rules, drops, pace, beat, gate=gate)
        parts = [
            _write_part(session, data_dir, snapshot_id, rules, declared, pace, beat, PiiGate(decision))
            for declared in snapshot.parts or []
        ]
        card = data_card(
            session,
            project=project,
            snapshot=snapshot,
            rules=rules,
            drops=drops,
            sha=sha,
            rows=rows,
            size=size,
            parts=parts,
            pii=gate.record(),
        )
    with db.session() as session:
        marked = session.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id, Snapshot.state == "pending")
            .values(
                state="ready",
                row_count=rows,
                size_bytes=size,
                sha256=sha,
                file_name=final.name,
                card=card,
                parts=parts,
                filters=rules.public_dump() | {"pii": gate.record()},
                rounds=rounds_of(drops),
                finished_at=utcnow(),
            )
        )
        if marked.rowcount == 1:  # type: ignore[attr-defined]
            webhook_events.snapshot_ready(session, snapshot_id=snapshot_id)  # sent once this commits
            return "ready"
        # Another writer (a worker that took the job over) or a failure got there first: theirs stands.
        current = session.execute(select(Snapshot.state, Snapshot.file_name).where(Snapshot.id == snapshot_id)).one()
    if current.file_name != final.name:
        final.unlink(missing_ok=True)
        for part in parts:
            (data_dir / part["file_name"]).unlink(missing_ok=True)
    return str(current.state)


def stored_filter(snapshot: Snapshot) -> tuple[ExportFilter, PiiDecision]:
    """A snapshot's stored filter, and its decision on personal data (kept beside it, under ``pii``)."""
    stored = dict(snapshot.filters)
    decision = PiiDecision.from_stored(stored.pop("pii", None))
    return ExportFilter.model_validate(stored), decision


def _write_part(
    session: Session,
    data_dir: Path,
    snapshot_id: int,
    rules: Rules,
    declared: dict[str, Any],
    pace: Callable[[], Any] | None,
    beat: Callable[[], None] | None,
    gate: PiiGate,
) -> dict[str, Any]:
    """A declared part of the snapshot, written: the part with its file name, sha256, rows and bytes."""
    made = part_rules(rules, session, declared)
    final, sha, rows, size = _write_file(
        session, data_dir, snapshot_id, made, Counter(), pace, beat, label=declared["name"], gate=gate
    )
    return declared | {"file_name": final.name, "sha256": sha, "rows": rows, "bytes": size}


def _write_file(
    session: Session,
    data_dir: Path,
    snapshot_id: int,
    rules: Rules,
    drops: Counter[str],
    pace: Callable[[], Any] | None,
    beat: Callable[[], None] | None,
    *,
    label: str = "",
    gate: PiiGate,
) -> tuple[Path, str, int, int]:
    """The snapshot's JSONL (or its part ``label``'s), through the personal-data ``gate``, written into place,
    read-only, and durable: its path, sha256, rows and bytes."""
    digest = hashlib.sha256()
    rows = size = 0
    tmp = data_dir / f".snapshot-{snapshot_id}-{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            for line in gate.lines(jsonl_lines(session, rules=rules, drops=drops, pace=pace), drops):
                f.write(line)
                digest.update(line)
                rows += 1
                size += len(line)
                if beat is not None and rows % 20000 == 0:
                    beat()
            f.flush()
            os.fsync(f.fileno())
        metrics.count_export_bytes("snapshot", size)
        sha = digest.hexdigest()
        final = data_dir / f"snapshot-{snapshot_id}-{label + '-' if label else ''}{sha[:16]}.jsonl"
        os.replace(tmp, final)
        os.chmod(final, 0o444)
        _fsync_dir(data_dir)
    finally:
        tmp.unlink(missing_ok=True)
    return final, sha, rows, size


def _remove_abandoned(data_dir: Path, snapshot_id: int) -> None:
    """Temporary files of this snapshot left by a writer that died (untouched for ten minutes)."""
    cutoff = time.time() - ABANDONED_AFTER_S
    for path in data_dir.glob(f".snapshot-{snapshot_id}-*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def fail_snapshot(db: Database, *, snapshot_id: int, error: str) -> None:
    """Mark a pending snapshot failed (a snapshot already written stays as it is)."""
    with db.session() as session:
        session.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id, Snapshot.state == "pending")
            .values(state="failed", error=error[:2000], finished_at=utcnow())
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
