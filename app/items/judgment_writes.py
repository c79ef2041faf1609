"""Storing checked judgments in bulk: their annotators, assignments, judgments and verdicts, and the items'
counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.db import is_postgres
from app.items.judgment_checks import Checked, Plan, chunks, submit_key_of
from app.models import Assignment, Item, Judgment, Project, ProjectMember, User, Verdict, utcnow

UNUSABLE_PASSWORD = "!external"  # not a hash: no password verifies against it

# The tables written in bulk, through Core (one executemany a chunk; the ORM's bulk insert fetched server defaults
# row by row on SQLite).
ASSIGNMENT: Table = Assignment.__table__  # type: ignore[assignment]
JUDGMENT: Table = Judgment.__table__  # type: ignore[assignment]
VERDICT: Table = Verdict.__table__  # type: ignore[assignment]


def add_annotators(session: Session, project: Project, plan: Plan) -> None:
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


def _insert_assignments(session: Session, fresh: Sequence[Checked], rows: list[dict[str, Any]]) -> dict[int, int]:
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


def store_chunk(session: Session, project: Project, plan: Plan, chunk: Sequence[Checked], sha256: str) -> None:
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


def count_items(session: Session, checked: list[Checked]) -> None:
    """Each item has its imported judgments more, submitted and claimed (they may pass the overlap r: the queue
    then hands the item out no more)."""
    added = Counter(c.item.id for c in checked)
    rows = [{"item": item_id, "n": n} for item_id, n in sorted(added.items())]
    statement = (
        update(Item)
        .where(Item.id == bindparam("item"))
        .values(judgment_count=Item.judgment_count + bindparam("n"), claims=Item.claims + bindparam("n"))
    )
    for chunk in chunks(rows):
        session.connection().execute(statement, list(chunk))
