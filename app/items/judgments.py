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
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple, TypeVar, cast

from sqlalchemy import JSON, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.annotation.judgments import _validate_verdicts
from app.annotation.schemas import VerdictIn
from app.annotation.tallies import recount_tallies
from app.db import is_postgres
from app.items.importer import MAX_DUPLICATES_LISTED, MAX_ERRORS, ImportFailed
from app.items.judgment_lines import JudgmentLine, PositionVerdict, judgment_line
from app.items.readers import CountingReader, LineError, jsonl_records
from app.kit.errors import Invalid
from app.kit.schemas import shown
from app.models import Assignment, Candidate, Item, Judgment, Project, ProjectMember, User, Verdict, utcnow

CHUNK = 1000
UNUSABLE_PASSWORD = "!external"  # not a hash: no password verifies against it
KEY_PREFIX = "import-"

# The tables written in bulk, through Core (one executemany a chunk; the ORM's bulk insert fetched server defaults
# row by row on SQLite).
ASSIGNMENT: Table = Assignment.__table__  # type: ignore[assignment]
JUDGMENT: Table = Judgment.__table__  # type: ignore[assignment]
VERDICT: Table = Verdict.__table__  # type: ignore[assignment]

# Reports the work done: ("read", bytes read) while the file is read, ("write", judgments stored) while storing.
Progress = Callable[[str, int], None]
T = TypeVar("T")


@dataclass
class JudgmentImportResult:
    lines: int = 0
    judgments: int = 0  # stored (a dry run: that would be stored)
    items: int = 0
    annotators_created: list[str] = field(default_factory=list)
    annotators_matched: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_DUPLICATES_LISTED
    skipped_count: int = 0
    already_imported: bool = False
    dry_run: bool = False
    sha256: str = ""


class _Cand(NamedTuple):
    id: int  # all that the judgment rules read of a candidate


@dataclass
class _Target:
    """An item as the lines name it: its current round's candidate ids by position."""

    id: int
    round: int
    candidates: list[int]


@dataclass
class _Checked:
    line: int
    judgment: JudgmentLine
    item: _Target
    verdicts: dict[str, _IdVerdict]
    reuse_assignment: int | None = None  # a skipped or lapsed lease of the annotator on this item


@dataclass
class _Errors:
    errors: list[dict[str, Any]] = field(default_factory=list)
    more: int = 0

    def add(self, line: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "message": shown(message)})
        else:
            self.more += 1


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


def submit_key_of(project_id: int, sha256: str, line: int) -> str:
    """The submit key of an imported line: the same file, line and project always give the same key."""
    digest = hashlib.sha256(f"{project_id}:{sha256}:{line}".encode()).hexdigest()
    return KEY_PREFIX + digest[: 64 - len(KEY_PREFIX)]


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _read_lines(
    stream: IO[bytes], project: Project, errors: _Errors, progress: Progress | None
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


def _targets(session: Session, project: Project, external_ids: list[str]) -> dict[str, _Target]:
    """The project's items with these external ids, with their current round's candidates."""
    targets: dict[str, _Target] = {}
    for chunk in _chunks(external_ids):
        rows = session.execute(
            select(Item.external_id, Item.id, Item.round, Candidate.id)
            .join(Candidate, (Candidate.item_id == Item.id) & (Candidate.round == Item.round), isouter=True)
            .where(Item.project_id == project.id, Item.external_id.in_(chunk))
            .order_by(Item.id, Candidate.position)
        )
        for external_id, item_id, round_, candidate_id in rows:
            target = targets.setdefault(external_id, _Target(item_id, round_, []))
            if candidate_id is not None:
                target.candidates.append(candidate_id)
    return targets


def _annotators(session: Session, names: list[str], *, as_members: bool) -> tuple[dict[str, User], set[str], set[str]]:
    """Existing users by name, the names that need an ordinary user (refused unless ``as_members``), and the new
    names."""
    users: dict[str, User] = {}
    for chunk in _chunks(names):
        users.update((u.username, u) for u in session.scalars(select(User).where(User.username.in_(chunk))))
    ordinary = {name for name, user in users.items() if not user.external and not as_members}
    return users, ordinary, set(names) - set(users)


def _existing(session: Session, project: Project, user_ids: list[int], item_ids: list[int]) -> dict[Any, Any]:
    """(item id, annotator id, round) → (assignment id, status) of the given users' assignments on these items."""
    found: dict[Any, Any] = {}
    if not user_ids:
        return found
    for chunk in _chunks(item_ids):
        rows = session.execute(
            select(Assignment.item_id, Assignment.annotator_id, Assignment.round, Assignment.id, Assignment.status)
            .where(Assignment.project_id == project.id, Assignment.item_id.in_(chunk))
            .where(Assignment.annotator_id.in_(user_ids))
        )
        found.update(((r[0], r[1], r[2]), (r[3], r[4])) for r in rows)
    return found


class _IdVerdict(NamedTuple):
    """A verdict in candidate ids, with the fields of ``VerdictIn`` that the judgment rules and the verdict table
    read. Not a ``VerdictIn``: ``judgment_line`` checked every rule of that model already (kinds and their fields,
    distinct candidates, strength 1–3, rankings and their gaps), and building 600k of them (100k judgments, six
    dimensions) took longer than the rest of the checks together."""

    kind: str
    chosen: int | None
    rejected: int | None
    strength: int | None
    ranking: list[list[int]] | None
    much: list[int] | None

    def stored_ranking(self) -> dict[str, Any] | None:
        return {"tiers": self.ranking, "much": self.much} if self.kind == "ranking" else None


def _in_ids(verdicts: dict[str, PositionVerdict], candidates: list[int]) -> dict[str, _IdVerdict]:
    """Positions → this round's candidate ids."""
    return {
        dim: _IdVerdict(
            v.kind,
            candidates[v.chosen] if v.chosen is not None else None,
            candidates[v.rejected] if v.rejected is not None else None,
            v.strength,
            [[candidates[p] for p in tier] for tier in v.ranking] if v.ranking is not None else None,
            list(v.much) if v.much is not None else None,
        )
        for dim, v in verdicts.items()
    }


def _check_rules(project: Project, line: JudgmentLine, target: _Target) -> dict[str, _IdVerdict]:
    """The line's verdicts in candidate ids, checked by the rules of a submitted judgment; a LineError if not."""
    verdicts = _in_ids(line.verdicts, target.candidates)
    try:
        # The rules read only the candidates' ids, and of each verdict the fields that _IdVerdict has.
        candidates = cast(list[Candidate], [_Cand(c) for c in target.candidates])
        _validate_verdicts(project, candidates, cast(dict[str, VerdictIn], verdicts))
    except Invalid as exc:
        raise LineError(str(exc.detail)) from exc
    return verdicts


@dataclass
class _Plan:
    """What the lines will write, once every line has passed."""

    checked: list[_Checked] = field(default_factory=list)
    users: dict[str, User] = field(default_factory=dict)
    new_names: list[str] = field(default_factory=list)


def _check_lines(
    session: Session,
    project: Project,
    lines: list[tuple[int, JudgmentLine]],
    errors: _Errors,
    result: JudgmentImportResult,
    *,
    skip_existing: bool,
    as_members: bool,
) -> _Plan:
    """Each line against the database: its item, its annotator, what they already did on the item, the rules."""
    targets = _targets(session, project, sorted({j.item for _, j in lines}))
    names = sorted({j.annotator for _, j in lines})
    users, ordinary, new = _annotators(session, names, as_members=as_members)
    existing = _existing(
        session, project, sorted(u.id for u in users.values()), sorted({t.id for t in targets.values()})
    )
    plan = _Plan(users=users, new_names=sorted(new))
    refused: set[str] = set()
    for line, judgment in lines:
        target = targets.get(judgment.item)
        if target is None:
            errors.add(line, f"no item with id {judgment.item!r} in this project")
            continue
        if len(target.candidates) != project.k:
            errors.add(line, f"item {judgment.item!r} has no candidates to judge yet")
            continue
        if judgment.annotator in ordinary:
            if judgment.annotator not in refused:  # once per name: its first line
                refused.add(judgment.annotator)
                errors.add(
                    line,
                    f"{judgment.annotator!r} is an existing user: to import their judgments as theirs, import with "
                    "--as-members (as_members=true); otherwise rename the annotator in the file",
                )
            continue
        user = users.get(judgment.annotator)
        held = existing.get((target.id, user.id, target.round)) if user is not None else None
        reuse = None
        if held is not None:
            assignment_id, status = held
            if status == "submitted" and skip_existing:
                result.skipped_count += 1
                if len(result.skipped) < MAX_DUPLICATES_LISTED:
                    result.skipped.append({"line": line, "reason": "already judged by this annotator"})
                continue
            if status in ("submitted", "leased"):
                what = "already judged" if status == "submitted" else "is judging"
                errors.add(line, f"{judgment.annotator!r} {what} item {judgment.item!r} (its current candidates)")
                continue
            reuse = assignment_id  # skipped, or a lease that lapsed: it becomes the judged one
        try:
            verdicts = _check_rules(project, judgment, target)
        except LineError as exc:
            errors.add(line, str(exc))
            continue
        plan.checked.append(_Checked(line, judgment, target, verdicts, reuse))
    return plan


def _add_annotators(session: Session, project: Project, plan: _Plan) -> None:
    """Create the external users, and make every annotator of the file a project member."""
    for name in plan.new_names:
        user = User(username=name, display_name=name, password_hash=UNUSABLE_PASSWORD, role="annotator", external=True)
        session.add(user)
        plan.users[name] = user
    session.flush()
    used = {c.judgment.annotator for c in plan.checked}
    ids = sorted(plan.users[n].id for n in used)
    members = set(
        session.scalars(
            select(ProjectMember.user_id).where(ProjectMember.project_id == project.id, ProjectMember.user_id.in_(ids))
        )
    )
    rows = [{"project_id": project.id, "user_id": i, "paused": False} for i in ids if i not in members]
    if rows:
        session.execute(insert(ProjectMember), rows)


def _insert_many(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows in bulk: SQLite's executemany runs in C; on PostgreSQL COPY (psycopg's executemany sends a
    statement per row, and multi-row VALUES were no faster)."""
    if not rows:
        return
    if not is_postgres(session):
        session.connection().execute(insert(table), rows)
        return
    import psycopg  # the PostgreSQL driver: only when it is the one in use
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    raw = cast("psycopg.Connection[Any]", session.connection().connection.dbapi_connection)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Jsonb(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns])


def _insert_assignments(session: Session, fresh: Sequence[_Checked], rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert the new assignments; line → assignment id."""
    if not rows:
        return {}
    _insert_many(session, ASSIGNMENT, rows)
    found = session.execute(
        select(Assignment.item_id, Assignment.round, Assignment.annotator_id, Assignment.id).where(
            Assignment.item_id.in_({r["item_id"] for r in rows}),
            Assignment.annotator_id.in_({r["annotator_id"] for r in rows}),
        )
    )
    by_key = {(item, round_, annotator): aid for item, round_, annotator, aid in found}
    return {c.line: by_key[(r["item_id"], r["round"], r["annotator_id"])] for c, r in zip(fresh, rows, strict=True)}


def _store_chunk(session: Session, project: Project, plan: _Plan, chunk: Sequence[_Checked], sha256: str) -> None:
    now = utcnow()
    annotator = {c.line: plan.users[c.judgment.annotator].id for c in chunk}
    fresh = [c for c in chunk if c.reuse_assignment is None]
    assignment_rows = [
        {
            "project_id": project.id,
            "item_id": c.item.id,
            "annotator_id": annotator[c.line],
            "round": c.item.round,
            "status": "submitted",
            "display_order": c.item.candidates,
            "leased_at": c.judgment.created_at or now,
            "lease_expires_at": c.judgment.created_at or now,
            "updated_at": now,
        }
        for c in fresh
    ]
    assignment_ids = _insert_assignments(session, fresh, assignment_rows)
    reused = [c for c in chunk if c.reuse_assignment is not None]
    for c in reused:
        session.execute(
            update(Assignment)
            .where(Assignment.id == c.reuse_assignment)
            .values(status="submitted", display_order=c.item.candidates, skip_reason=None, updated_at=now)
        )
        assignment_ids[c.line] = cast(int, c.reuse_assignment)
    judgment_rows = [
        {
            "project_id": project.id,
            "item_id": c.item.id,
            "annotator_id": annotator[c.line],
            "assignment_id": assignment_ids[c.line],
            "round": c.item.round,
            "reason": c.judgment.reason,
            "flag_all_bad": c.judgment.all_bad,
            "flag_problematic": c.judgment.problematic,
            "seconds": c.judgment.seconds,
            "submit_key": submit_key_of(project.id, sha256, c.line),
            "version": 1,
            "imported": True,
            "created_at": c.judgment.created_at or now,
            "updated_at": now,  # the agreement figures notice a change by it
        }
        for c in chunk
    ]
    # The ids read back by key: RETURNING in the rows' order costs a statement per row on SQLite.
    _insert_many(session, JUDGMENT, judgment_rows)
    keys = [submit_key_of(project.id, sha256, c.line) for c in chunk]
    by_key = dict(
        session.execute(select(Judgment.submit_key, Judgment.id).where(Judgment.submit_key.in_(keys))).tuples().all()
    )
    judgment_ids = [by_key[key] for key in keys]
    verdict_rows = [
        {
            "judgment_id": judgment_id,
            "dimension": dim,
            "kind": v.kind,
            "chosen_candidate_id": v.chosen,
            "rejected_candidate_id": v.rejected,
            "strength": v.strength,
            "ranking": v.stored_ranking(),
        }
        for c, judgment_id in zip(chunk, judgment_ids, strict=True)
        for dim, v in c.verdicts.items()
    ]
    _insert_many(session, VERDICT, verdict_rows)


def _count_items(session: Session, checked: list[_Checked]) -> None:
    """Each item has its imported judgments more, submitted and claimed (they may pass the overlap r: the queue
    then hands the item out no more)."""
    added = Counter(c.item.id for c in checked)
    rows = [{"item": item_id, "n": n} for item_id, n in sorted(added.items())]
    statement = (
        update(Item)
        .where(Item.id == bindparam("item"))
        .values(judgment_count=Item.judgment_count + bindparam("n"), claims=Item.claims + bindparam("n"))
    )
    for chunk in _chunks(rows):
        session.connection().execute(statement, list(chunk))


def _already_imported(session: Session, project: Project, sha256: str, lines: list[int]) -> int:
    """How many of these lines this very file already stored in the project (0: never imported)."""
    keys = [submit_key_of(project.id, sha256, line) for line in lines]
    found = 0
    for chunk in _chunks(keys):
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
    errors = _Errors()
    lines, result.lines, result.sha256 = _read_lines(stream, project, errors, progress)
    if not errors.errors and not lines:
        raise Invalid("The file has no judgments")
    if not errors.errors and _already_imported(session, project, result.sha256, [n for n, _ in lines]):
        result.already_imported = True
        return result
    plan = _check_lines(session, project, lines, errors, result, skip_existing=skip_existing, as_members=as_members)
    if errors.errors:
        raise ImportFailed(sorted(errors.errors, key=lambda e: e["line"]), result.lines, errors.more)
    result.judgments = len(plan.checked)
    result.items = len({c.item.id for c in plan.checked})
    used = {c.judgment.annotator for c in plan.checked}
    result.annotators_created = [n for n in plan.new_names if n in used]
    result.annotators_matched = sorted(used - set(plan.new_names))
    if dry_run or not plan.checked:
        return result
    _add_annotators(session, project, plan)
    for done, chunk in enumerate(_chunks(plan.checked), start=1):
        _store_chunk(session, project, plan, chunk, result.sha256)
        if progress:
            progress("write", min(done * CHUNK, len(plan.checked)))
    _count_items(session, plan.checked)
    recount_tallies(session, project_id=project.id)
    session.flush()
    return result
