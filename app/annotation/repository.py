"""The annotation queue's and judgments' reads and the statements that store a judgment.

Row locks are taken through ``app.db.for_update``: on PostgreSQL the queue relies on them (``SKIP LOCKED`` so
that annotators never wait on each other), on SQLite the whole write transaction is serialised instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Executable, Row, Table, bindparam, select, text
from sqlalchemy.orm import Session

from app.db import for_update
from app.models import IS_GOLD, Assignment, Candidate, Item, Judgment, Verdict


def candidates_of_round(session: Session, *, item_id: int, round_: int) -> list[Candidate]:
    """The candidates of one round of an item, in the order they were generated."""
    return list(
        session.scalars(
            select(Candidate)
            .where(Candidate.item_id == item_id, Candidate.round == round_)
            .order_by(Candidate.position)
        )
    )


def current_candidates(session: Session, assignment: Assignment) -> list[Candidate]:
    """The assignment's candidates while their round is still its item's current one; none once regenerated."""
    return list(
        session.scalars(
            select(Candidate)
            .join(Item, Item.id == Candidate.item_id)
            .where(
                Candidate.item_id == assignment.item_id,
                Candidate.round == assignment.round,
                Item.round == assignment.round,
            )
            .order_by(Candidate.position)
        )
    )


def open_lease(session: Session, *, project_id: int, annotator_id: int) -> Assignment | None:
    """The annotator's leased assignment in the project (there is at most one)."""
    return session.scalar(
        select(Assignment).where(
            Assignment.project_id == project_id,
            Assignment.annotator_id == annotator_id,
            Assignment.status == "leased",
        )
    )


def held_leases(session: Session, *, project_id: int, annotator_id: int) -> Sequence[Row[tuple[int, int, int, str]]]:
    """(id, item id, round, status) of the annotator's open lease and their lapsed ones, in one look at the
    assignment index (usually there are none)."""
    return session.execute(
        select(Assignment.id, Assignment.item_id, Assignment.round, Assignment.status).where(
            Assignment.annotator_id == annotator_id,
            Assignment.project_id == project_id,
            Assignment.status.in_(("leased", "expired")),
        )
    ).all()


def lapsed_leases(session: Session, *, project_id: int, now: datetime) -> Sequence[Row[tuple[int, int]]]:
    """(id, item id) of the project's leases that ran out unswept, skipping those another sweep holds."""
    query = select(Assignment.id, Assignment.item_id).where(
        Assignment.project_id == project_id, Assignment.status == "leased", Assignment.lease_expires_at < now
    )
    return session.execute(for_update(session, query, skip_locked=True)).all()


def lapsed_item_with_room(
    session: Session, *, room: ColumnElement[bool], annotator_id: int, item_ids: list[int]
) -> Item | None:
    """Of the items of the annotator's lapsed leases, the most recently lapsed one that still has ``room`` (or is
    gold), locked.

    Only ``item_ids`` are looked at, found from the assignment index beforehand: in one join, SQLite's planner
    scanned every item of the project (60 ms with 400k items)."""
    query = (
        select(Item)
        .join(Assignment, (Assignment.item_id == Item.id) & (Assignment.round == Item.round))
        .where(
            Item.id.in_(item_ids),
            Assignment.annotator_id == annotator_id,
            Assignment.status == "expired",
            Item.status == "ready",
            IS_GOLD | room,
        )
        .order_by(Assignment.lease_expires_at.desc())
        .limit(1)
    )
    return session.scalar(for_update(session, query, skip_locked=True, of=Item))


def verdicts_of_round(
    session: Session, *, item_id: int, round_: int
) -> Sequence[Row[tuple[str, str, int | None, dict[str, Any] | None]]]:
    """(dimension, kind, chosen candidate, ranking) of every verdict given on the item's round."""
    return session.execute(
        select(Verdict.dimension, Verdict.kind, Verdict.chosen_candidate_id, Verdict.ranking)
        .join(Judgment, Judgment.id == Verdict.judgment_id)
        .where(Judgment.item_id == item_id, Judgment.round == round_)
    ).all()


def lock_item_counts(session: Session, *, item_id: int) -> Row[tuple[int, int, int | None, bool]] | None:
    """(round, judgment count, target, is gold) of an item, its row locked (on PostgreSQL; waiting for it)."""
    query = select(Item.round, Item.judgment_count, Item.target, Item.is_gold).where(Item.id == item_id)
    return session.execute(for_update(session, query)).first()


def own_assignment(session: Session, *, project_id: int, annotator_id: int, assignment_id: int) -> Assignment | None:
    """The annotator's assignment, locked on PostgreSQL: a submit and a skip of one lease take turns."""
    query = select(Assignment).where(
        Assignment.id == assignment_id,
        Assignment.project_id == project_id,
        Assignment.annotator_id == annotator_id,
    )
    return session.scalar(for_update(session, query))


def _of_lease(assignment: Assignment) -> ColumnElement[bool]:
    """The judgment stored for the assignment's item and round by its annotator (at most one: a unique key)."""
    return (
        (Judgment.item_id == assignment.item_id)
        & (Judgment.round == assignment.round)
        & (Judgment.annotator_id == assignment.annotator_id)
    )


def judgment_of_lease(session: Session, assignment: Assignment) -> Judgment | None:
    """The judgment stored for the assignment's item and round by its annotator, if any."""
    return session.scalar(select(Judgment).where(_of_lease(assignment)))


def stored_judgments(
    session: Session, assignment: Assignment, submit_key: str
) -> tuple[Judgment | None, Judgment | None]:
    """In one query: the judgment stored under ``submit_key`` (anyone's), and the one stored for the
    assignment's item and round by its annotator."""
    found = session.scalars(select(Judgment).where((Judgment.submit_key == submit_key) | _of_lease(assignment))).all()
    by_key = next((j for j in found if j.submit_key == submit_key), None)
    lease = (assignment.item_id, assignment.round, assignment.annotator_id)
    of_lease = next((j for j in found if (j.item_id, j.round, j.annotator_id) == lease), None)
    return by_key, of_lease


def item_round(session: Session, item_id: int) -> int | None:
    """The item's current candidate round."""
    return session.scalar(select(Item.round).where(Item.id == item_id))


def _insert_judgment_statement() -> Executable:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the judgment, as text that both backends take.

    Written out because SQLAlchemy 2.0 cannot cache a statement with an ON CONFLICT clause: it compiled the
    insert again at every submit (0.4 ms, and the ORM's work around it: a seventh of a submit's CPU). The
    columns are the model's, so the text follows the table."""
    table: Table = Judgment.__table__  # type: ignore[assignment]
    columns = [c for c in table.columns if c.name != "id"]
    names = ", ".join(c.name for c in columns)
    values = ", ".join(f":{c.name}" for c in columns)
    returning = ", ".join(c.name for c in table.columns)
    # Any unique key, (item, round, annotator) or the submit key: a concurrent duplicate stored it first.
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING RETURNING {returning}"
    statement = text(sql).bindparams(*(bindparam(c.name, type_=c.type) for c in columns))
    return select(Judgment).from_statement(statement.columns(*table.columns))


_INSERT_JUDGMENT = _insert_judgment_statement()


def insert_judgment(session: Session, columns: dict[str, Any]) -> Judgment | None:
    """Store a judgment row; None when a unique key (its lease's, or its submit key) was taken already."""
    judgment: Judgment | None = session.scalar(_INSERT_JUDGMENT, columns)
    return judgment


def verdict_rows_of(session: Session, judgment_ids: list[int]) -> list[Verdict]:
    """The stored verdicts of these judgments."""
    return list(session.scalars(select(Verdict).where(Verdict.judgment_id.in_(judgment_ids))))


def own_judgment(session: Session, *, project_id: int, annotator_id: int, judgment_id: int) -> Judgment | None:
    return session.scalar(
        select(Judgment).where(
            Judgment.id == judgment_id, Judgment.project_id == project_id, Judgment.annotator_id == annotator_id
        )
    )


def recent_judgments(session: Session, *, project_id: int, annotator_id: int, limit: int) -> list[Judgment]:
    """The annotator's judgments in the project, last changed first."""
    return list(
        session.scalars(
            select(Judgment)
            .where(Judgment.project_id == project_id, Judgment.annotator_id == annotator_id)
            .order_by(Judgment.updated_at.desc(), Judgment.id.desc())
            .limit(limit)
        )
    )


def items_by_id(session: Session, item_ids: list[int]) -> dict[int, Item]:
    """The items of these ids, in one query."""
    if not item_ids:
        return {}
    return {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(item_ids)))}


def skipped_assignments(session: Session, *, project_id: int, annotator_id: int, limit: int) -> list[Assignment]:
    """The annotator's skipped assignments in the project, last changed first."""
    return list(
        session.scalars(
            select(Assignment)
            .where(
                Assignment.project_id == project_id,
                Assignment.annotator_id == annotator_id,
                Assignment.status == "skipped",
            )
            .order_by(Assignment.updated_at.desc(), Assignment.id.desc())
            .limit(limit)
        )
    )


def assignments_by_id(session: Session, assignment_ids: list[int]) -> dict[int, Assignment]:
    """The assignments of these ids, in one query."""
    if not assignment_ids:
        return {}
    return {a.id: a for a in session.scalars(select(Assignment).where(Assignment.id.in_(assignment_ids)))}
