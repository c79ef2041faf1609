"""The assignment queue and judgments.

Invariant: ``item.claims`` = live leases + submitted judgments of the item, never above the project's
overlap r. It is only changed by single ``UPDATE ... SET claims = claims ± 1`` statements, and a claim
first locks the item row (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so annotators never wait on each other;
SQLite: the whole write transaction is ``BEGIN IMMEDIATE``, so claims are serialised).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Exists,
    Select,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.annotation.schemas import JudgmentIn, VerdictIn
from app.db import Database, serial_plan
from app.kit.errors import Busy, Conflict, Forbidden, Invalid, NotFound
from app.models import (
    IS_GOLD,
    OVERALL,
    AnnotatorTally,
    Assignment,
    Candidate,
    Item,
    Judgment,
    Project,
    ProjectMember,
    User,
    Verdict,
    utcnow,
)
from app.projects.service import membership

log = logging.getLogger(__name__)

LETTERS = "ABCD"
# How long a claim waits for other claims holding the last open items before answering "busy" (503).
CLAIM_WAIT_SECONDS = 10.0
# Next-item looks for an unjudged item among this many of the fullest items in progress before taking a fresh one:
# an annotator far ahead of the others has judged most items in progress, and checking each of them cost a scan
# that grew with their lead (2,800 items of their own: 90 ms a next-item).
IN_PROGRESS_WINDOW = 64


# Why a submission for a regenerated item is refused: its candidates left the queue, the export and the agreement
# figures (all of them read the item's current round), so a judgment stored for them would be counted nowhere.
REGENERATED = (
    "This item's candidates were regenerated while you judged them, so your judgment was not stored; "
    "the new candidates are waiting to be judged"
)


class Superseded(Conflict):
    """A submission for a candidate round that is no longer the item's: refused before anything is written."""


@dataclass
class Progress:
    judged_by_me: int
    my_target: int
    items_done: int
    items_total: int


@dataclass
class Task:
    """A leased item as one annotator sees it: candidates in their display order."""

    assignment: Assignment
    item: Item
    candidates: list[Candidate]

    def label_of(self, candidate_id: int) -> str:
        return LETTERS[[c.id for c in self.candidates].index(candidate_id)]


def dimension_keys(project: Project) -> list[str]:
    return [OVERALL, *project.dimension_keys]


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def expire_leases(session: Session, *, project_id: int, now: datetime | None = None) -> int:
    """Return the items of lapsed leases to the pool; returns how many leases lapsed."""
    now = now or utcnow()
    query = select(Assignment.id, Assignment.item_id).where(
        Assignment.project_id == project_id, Assignment.status == "leased", Assignment.lease_expires_at < now
    )
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    lapsed = session.execute(query).all()
    if not lapsed:
        return 0
    session.execute(
        update(Assignment)
        .where(Assignment.id.in_([a_id for a_id, _ in lapsed]), Assignment.status == "leased")
        .values(status="expired")
    )
    # Items in id order, so that two sweeps never lock them in opposite orders.
    for item_id in sorted({item_id for _, item_id in lapsed}):
        count = sum(1 for _, i in lapsed if i == item_id)
        session.execute(update(Item).where(Item.id == item_id).values(claims=Item.claims - count))
    return len(lapsed)


def _candidates(session: Session, item_id: int, round_: int) -> list[Candidate]:
    return list(
        session.scalars(
            select(Candidate)
            .where(Candidate.item_id == item_id, Candidate.round == round_)
            .order_by(Candidate.position)
        )
    )


def task_for(session: Session, assignment: Assignment, *, candidates: list[Candidate] | None = None) -> Task:
    """The assignment's item and candidates in its display order (``candidates``: of its round, if loaded)."""
    item = session.get(Item, assignment.item_id)
    assert item is not None
    if candidates is None:
        candidates = _candidates(session, item.id, assignment.round)
    by_id = {c.id: c for c in candidates}
    ordered = [by_id[c] for c in assignment.display_order if c in by_id]
    if len(ordered) != len(by_id):  # candidates were regenerated since the lease was made
        ordered = list(by_id.values())
        random.shuffle(ordered)
        if session.info.get("write"):  # a read-only request shows the new order without storing it
            assignment.display_order = [c.id for c in ordered]
    return Task(assignment=assignment, item=item, candidates=ordered)


def current_task(session: Session, *, project: Project, annotator: User) -> Task | None:
    """The annotator's open lease in this project, if any (renewed if it lapsed unswept)."""
    assignment = session.scalar(
        select(Assignment).where(
            Assignment.project_id == project.id,
            Assignment.annotator_id == annotator.id,
            Assignment.status == "leased",
        )
    )
    if assignment is None:
        return None
    return task_for(session, assignment)


def assign_next_item(session: Session, *, project: Project, annotator: User) -> Task | None:
    """Lease the annotator an item they have not judged, fullest first; None when nothing is left.

    One open lease per annotator: an existing lease is returned (and extended) instead of a new one.
    """
    now = utcnow()
    lease = timedelta(minutes=project.lease_minutes)
    # Their open lease and their lapsed ones in one look at the assignment index (usually there are none).
    held = session.execute(
        select(Assignment.id, Assignment.item_id, Assignment.round, Assignment.status).where(
            Assignment.annotator_id == annotator.id,
            Assignment.project_id == project.id,
            Assignment.status.in_(("leased", "expired")),
        )
    ).all()
    open_lease = next((a_id for a_id, _, _, status in held if status == "leased"), None)
    if open_lease is not None:
        assignment = session.get(Assignment, open_lease)
        assert assignment is not None
        task = task_for(session, assignment)
        task.assignment.lease_expires_at = now + lease
        session.flush()
        return task
    expire_leases(session, project_id=project.id, now=now)
    if membership(session, project_id=project.id, user_id=annotator.id):
        raise Forbidden("An admin has paused your work in this project; ask them to resume it")

    mine = exists().where(
        Assignment.item_id == Item.id,
        Assignment.round == Item.round,
        Assignment.annotator_id == annotator.id,
        Assignment.status != "expired",
    )
    # Gold items look like any other item and are not limited by r: every annotator may get each one.
    gold_query = (
        select(Item)
        .where(Item.project_id == project.id, Item.status == "ready", IS_GOLD, ~mine)
        .order_by(Item.id)
        .limit(1)
    )
    # A lease of theirs that lapsed (session expired, laptop closed) comes back first while its item still has
    # room: same assignment, same display order, so the draft the page kept for it is restored and sent
    # instead of being dropped for another item. Their lapsed leases were found by the assignment index alone
    # above: in one join, SQLite's planner scanned every item of the project (60 ms with 400k items).
    lapsed_items = [item_id for _, item_id, _, _ in held]  # all "expired" now
    item = None
    if lapsed_items:
        lapsed_query = (
            select(Item)
            .join(Assignment, (Assignment.item_id == Item.id) & (Assignment.round == Item.round))
            .where(
                Item.id.in_(lapsed_items),
                Assignment.annotator_id == annotator.id,
                Assignment.status == "expired",
                Item.status == "ready",
                IS_GOLD | (Item.claims < project.overlap),
            )
            .order_by(Assignment.lease_expires_at.desc())
            .limit(1)
        )
        if _is_postgres(session):
            lapsed_query = lapsed_query.with_for_update(skip_locked=True, of=Item)
        item = session.scalar(lapsed_query)
    gold_due = item is None and project.gold_share > 0 and _gold_due(session, project=project, annotator=annotator)
    if gold_due:
        item = session.scalar(gold_query)
    if item is None:
        item = _claim_open_item(session, project=project, mine=mine)
    if item is None and not gold_due and project.gold_share > 0:
        item = session.scalar(gold_query)  # nothing else left: the remaining gold checks
    if item is None:
        return None
    claims = session.scalar(
        update(Item).where(Item.id == item.id).values(claims=Item.claims + 1).returning(Item.claims)
    )
    set_committed_value(item, "claims", claims)  # the row is ours (locked) until commit: no reload needed

    candidates = _candidates(session, item.id, item.round)
    # An earlier assignment of theirs to this item and round can only be a lapsed one (the item queries leave out
    # items they hold, judged or skipped), and those were all read above.
    earlier = next((a_id for a_id, i, r, _ in held if (i, r) == (item.id, item.round)), None)
    assignment = session.get(Assignment, earlier) if earlier is not None else None
    if assignment is None:
        order = [c.id for c in candidates]
        random.shuffle(order)
        assignment = Assignment(
            project_id=project.id,
            item_id=item.id,
            round=item.round,
            annotator_id=annotator.id,
            display_order=order,
            lease_expires_at=now + lease,
        )
        session.add(assignment)
    else:  # an earlier lease of theirs lapsed: same row, same display order
        assignment.status = "leased"
        assignment.leased_at = now
        assignment.lease_expires_at = now + lease
    session.flush()
    return task_for(session, assignment, candidates=candidates)


def _claim_open_item(session: Session, *, project: Project, mine: Exists) -> Item | None:
    """The open item to lease next (locked on PostgreSQL), fullest first: the first of the fullest items in
    progress (a window of them) that is not the annotator's, else the first fresh one, else — only when none is
    left of either, near a project's end — any open item not theirs. Each query is built only when reached."""
    postgres = _is_postgres(session)  # SQLite: one writer at a time, what was read is what is claimed
    ready = (Item.project_id == project.id, Item.status == "ready", Item.is_gold.is_(False))
    fullest = (Item.claims.desc(), Item.id)
    has_room = Item.claims < project.overlap

    def first(query: Select[tuple[Item]]) -> Item | None:
        return session.scalar(query.with_for_update(skip_locked=True, of=Item) if postgres else query)

    window = select(Item.id).where(*ready, Item.claims > 0, has_room).order_by(*fullest).limit(IN_PROGRESS_WINDOW)
    in_window = select(Item).where(Item.id.in_(window), ~mine)
    if postgres:
        # PostgreSQL checks a row it has just locked against the conditions of the query itself once more (another
        # claim may have filled it since the statement began), not against those of the window's subquery: they
        # are repeated outside it, or an item could be claimed past r. (On SQLite they would lead its planner to
        # scan the queue index instead of looking the window's ids up.)
        in_window = in_window.where(*ready, has_room)
    item = first(in_window.order_by(*fullest).limit(1))
    if item is None:
        # claims = 0 alone (no "< r" beside it): SQLite then walks the queue index in id order and stops early
        item = first(select(Item).where(*ready, Item.claims == 0, ~mine).order_by(Item.id).limit(1))
    if item is None:
        anything = select(Item).where(*ready, has_room, ~mine).order_by(*fullest).limit(1)
        item = _lock_open_item(session, anything) if postgres else session.scalar(anything)
    return item


def _lock_open_item(session: Session, query: Select[tuple[Item]]) -> Item | None:
    """The first open item of ``query`` that no other transaction holds, locked; None when none is open.

    Every open item may be locked by another claim that has not committed yet (or is being rolled back):
    "nothing left" only once none is open in the committed state. That is polled, never waited for on the
    rows' locks: a blocking ``FOR UPDATE`` keeps the lock of every row it waited for and then skipped (filled
    meanwhile), and this transaction may hold item locks already (``expire_leases``), so two claims and a
    submit could each wait on the next one's lock (PostgreSQL aborts one of them as a deadlock).
    """
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    pause = 0.005
    while True:
        item = session.scalar(query.with_for_update(skip_locked=True, of=Item))
        if item is not None or session.scalar(query.with_only_columns(Item.id)) is None:
            return item
        if time.monotonic() > deadline:
            raise Busy("Other annotators are being given the last open items; try again in a moment")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _gold_due(session: Session, *, project: Project, annotator: User) -> bool:
    """Whether the annotator's next item should be gold, to keep their gold share at the project's."""
    judged, gold = _tally(session, project=project, annotator=annotator)
    return gold < project.gold_share * (judged + 1)


def _tally_key(project_id: int, annotator_id: int) -> tuple[str, int, int]:
    """Where ``_tally`` keeps an annotator's counts in ``session.info``."""
    return ("tally", project_id, annotator_id)


def _tally(session: Session, *, project: Project, annotator: User) -> tuple[int, int]:
    """(judged, of them gold) for the annotator in the project, from their tally row; read once per session
    (next-item needs it twice: for the gold share and the progress), again after a submit."""
    key = _tally_key(project.id, annotator.id)
    if key not in session.info:
        row = session.execute(
            select(AnnotatorTally.judged, AnnotatorTally.gold_judged).where(
                AnnotatorTally.project_id == project.id, AnnotatorTally.annotator_id == annotator.id
            )
        ).first()
        session.info[key] = (int(row[0]), int(row[1])) if row is not None else (0, 0)
    judged, gold = session.info[key]
    return judged, gold


def judged_count(session: Session, *, project: Project, annotator: User) -> int:
    """How many items the annotator has judged in the project (every candidate round)."""
    return _tally(session, project=project, annotator=annotator)[0]


def count_judgment(session: Session, *, project_id: int, annotator_id: int, gold: bool) -> None:
    """Add a new judgment to its annotator's tally (in the transaction that stores it)."""
    # An update first (a statement SQLAlchemy caches: it compiles one with ON CONFLICT at every use); the upsert
    # only for an annotator's first judgment in the project.
    increments = {"judged": AnnotatorTally.judged + 1, "gold_judged": AnnotatorTally.gold_judged + int(gold)}
    added = session.execute(
        update(AnnotatorTally)
        .where(AnnotatorTally.project_id == project_id, AnnotatorTally.annotator_id == annotator_id)
        .values(increments)
        .execution_options(synchronize_session=False)
    )
    if added.rowcount == 0:  # type: ignore[attr-defined]
        insert = pg_insert if _is_postgres(session) else sqlite_insert
        session.execute(
            insert(AnnotatorTally)
            .values(project_id=project_id, annotator_id=annotator_id, judged=1, gold_judged=int(gold))
            .on_conflict_do_update(
                index_elements=[AnnotatorTally.project_id, AnnotatorTally.annotator_id], set_=increments
            )
        )
    session.info.pop(_tally_key(project_id, annotator_id), None)


def shift_gold_tallies(session: Session, *, item: Item, gold: bool) -> None:
    """An item became gold (or stopped being gold): move its judgments into (out of) their annotators' gold
    counts. Call after the item's row was updated (and so locked): a submit of it waits for this transaction
    and then counts the item as it is now."""
    delta = 1 if gold else -1
    for annotator_id, n in session.execute(
        select(Judgment.annotator_id, func.count()).where(Judgment.item_id == item.id).group_by(Judgment.annotator_id)
    ):
        session.execute(
            update(AnnotatorTally)
            .where(AnnotatorTally.project_id == item.project_id, AnnotatorTally.annotator_id == annotator_id)
            .values(gold_judged=AnnotatorTally.gold_judged + delta * n)
        )
        session.info.pop(_tally_key(item.project_id, annotator_id), None)


def recount_tallies(session: Session, *, project_id: int) -> None:
    """Rebuild the project's tallies from its judgments (after judgments were written in bulk, not submitted)."""
    session.execute(delete(AnnotatorTally).where(AnnotatorTally.project_id == project_id))
    session.execute(
        insert(AnnotatorTally).from_select(
            ["project_id", "annotator_id", "judged", "gold_judged"],
            select(
                Judgment.project_id,
                Judgment.annotator_id,
                func.count(),
                func.coalesce(func.sum(case((Item.is_gold, 1), else_=0)), 0),
            )
            .join(Item, Item.id == Judgment.item_id)
            .where(Judgment.project_id == project_id)
            .group_by(Judgment.project_id, Judgment.annotator_id),
        )
    )
    for key in [k for k in session.info if isinstance(k, tuple) and k[:2] == ("tally", project_id)]:
        del session.info[key]


def _get_own_assignment(session: Session, *, project: Project, annotator: User, assignment_id: int) -> Assignment:
    query = select(Assignment).where(
        Assignment.id == assignment_id,
        Assignment.project_id == project.id,
        Assignment.annotator_id == annotator.id,
    )
    if _is_postgres(session):
        query = query.with_for_update()
    assignment = session.scalar(query)
    if assignment is None:
        raise NotFound("No such assignment")
    return assignment


def _of_lease(assignment: Assignment) -> ColumnElement[bool]:
    """The judgment stored for the assignment's item and round by its annotator (at most one: a unique key)."""
    return (
        (Judgment.item_id == assignment.item_id)
        & (Judgment.round == assignment.round)
        & (Judgment.annotator_id == assignment.annotator_id)
    )


def _judgment_of(session: Session, assignment: Assignment) -> Judgment | None:
    return session.scalar(select(Judgment).where(_of_lease(assignment)))


def _stored(session: Session, assignment: Assignment, submit_key: str) -> tuple[Judgment | None, Judgment | None]:
    """In one query: the judgment stored under ``submit_key`` (anyone's), and the one stored for the
    assignment's item and round by its annotator."""
    found = session.scalars(select(Judgment).where((Judgment.submit_key == submit_key) | _of_lease(assignment))).all()
    by_key = next((j for j in found if j.submit_key == submit_key), None)
    lease = (assignment.item_id, assignment.round, assignment.annotator_id)
    of_lease = next((j for j in found if (j.item_id, j.round, j.annotator_id) == lease), None)
    return by_key, of_lease


def _current_candidates(session: Session, assignment: Assignment) -> list[Candidate]:
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


def submit_digest(data: JudgmentIn) -> str:
    """The fingerprint of an answer as stored: verdicts, reason and flags (not the seconds on task, which a
    page that resends a kept draft measures anew)."""
    answer = {
        "verdicts": {dim: v.model_dump() for dim, v in sorted(data.verdicts.items())},
        "reason": data.reason.strip(),
        "all_bad": data.all_bad,
        "problematic": data.problematic,
    }
    return hashlib.sha256(json.dumps(answer, sort_keys=True).encode()).hexdigest()


def _replayed(judgment: Judgment, *, assignment: Assignment, digest: str) -> Judgment:
    """The stored judgment of a submit key, when this submission is its retry; otherwise a 409 (nothing stored)."""
    if judgment.annotator_id != assignment.annotator_id or judgment.project_id != assignment.project_id:
        raise Conflict("This submit key was already used")
    if judgment.assignment_id != assignment.id:
        raise Conflict(
            f"This submit key was already used for your judgment of another item (judgment {judgment.id}); "
            "this judgment was not stored: send it again with a new submit key"
        )
    if judgment.submit_digest is not None and judgment.submit_digest != digest:
        raise Conflict(
            "This submit key was already used with a different answer for this item; this answer was not stored: "
            "to change the judgment, edit it"
        )
    return judgment


def _validate_verdicts(project: Project, candidates: list[Candidate], verdicts: dict[str, VerdictIn]) -> None:
    expected = dimension_keys(project)
    missing = [d for d in expected if d not in verdicts]
    unknown = [d for d in verdicts if d not in expected]
    if missing:
        raise Invalid(f"Missing verdicts for: {', '.join(missing)}")
    if unknown:
        raise Invalid(f"Unknown dimensions: {', '.join(unknown)}")
    ids = {c.id for c in candidates}
    for dim, verdict in verdicts.items():
        if verdict.kind == "preference" and not {verdict.chosen, verdict.rejected} <= ids:
            raise Invalid(f"{dim}: candidates must belong to this item")
    if verdicts[OVERALL].kind == "na":
        raise Invalid("overall: choose a candidate or tie")


def _verdict_rows(judgment_id: int, verdicts: dict[str, VerdictIn]) -> list[Verdict]:
    return [
        Verdict(
            judgment_id=judgment_id,
            dimension=dim,
            kind=v.kind,
            chosen_candidate_id=v.chosen,
            rejected_candidate_id=v.rejected,
        )
        for dim, v in verdicts.items()
    ]


def _insert_judgment() -> Executable:
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


_INSERT_JUDGMENT = _insert_judgment()


def submit_judgment(
    session: Session,
    *,
    project: Project,
    annotator: User,
    assignment_id: int,
    submit_key: str,
    data: JudgmentIn,
) -> tuple[Judgment, bool]:
    """Store the judgment for a lease; returns (judgment, created).

    Idempotent: a retry or double-click (same lease, or same submit key with the same answer) returns the stored
    judgment; a submit key reused for another lease or another answer is a 409. A lease that lapsed is honoured
    while the item still has room; otherwise 409, and nothing is lost on the client, which keeps the draft. A lease
    whose item was regenerated meanwhile is refused (``Superseded``, 409): it counts toward no round.
    """
    assignment = _get_own_assignment(session, project=project, annotator=annotator, assignment_id=assignment_id)
    by_key, existing = _stored(session, assignment, submit_key)
    digest = submit_digest(data)
    if by_key is not None:
        return _replayed(by_key, assignment=assignment, digest=digest), False
    if existing is not None:
        return existing, False
    if assignment.status == "skipped":
        raise Conflict("You skipped this item")

    candidates = _current_candidates(session, assignment)
    if not candidates:
        raise Superseded(REGENERATED)
    _validate_verdicts(project, candidates, data.verdicts)
    if assignment.status == "expired":
        # Only on the round judged: a regeneration since the read above (another transaction) moved the item on.
        taken = session.execute(
            update(Item)
            .where(Item.id == assignment.item_id, Item.round == assignment.round, Item.claims < project.overlap)
            .values(claims=Item.claims + 1)
        )
        if taken.rowcount == 0:  # type: ignore[attr-defined]
            if session.scalar(select(Item.round).where(Item.id == assignment.item_id)) != assignment.round:
                raise Superseded(REGENERATED)
            raise Conflict("Your lease on this item expired and it was given to other annotators")

    now = utcnow()
    judgment = session.scalar(
        _INSERT_JUDGMENT,
        {
            "project_id": project.id,
            "item_id": assignment.item_id,
            "annotator_id": annotator.id,
            "assignment_id": assignment.id,
            "round": assignment.round,
            "reason": data.reason.strip(),
            "flag_all_bad": data.all_bad,
            "flag_problematic": data.problematic,
            "seconds": data.seconds if data.seconds is not None else (now - assignment.leased_at).total_seconds(),
            "submit_key": submit_key,
            "submit_digest": digest,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
    )
    if judgment is None:
        # A concurrent duplicate of this very submission won the race; return what it stored.
        winner = _judgment_of(session, assignment)
        if winner is None:  # the key was taken meanwhile by another of this annotator's submissions
            raise Conflict("This submit key was already used")
        if winner.submit_key == submit_key:
            _replayed(winner, assignment=assignment, digest=digest)
        return winner, False
    session.add_all(_verdict_rows(judgment.id, data.verdicts))
    assignment.status = "submitted"
    gold = session.scalar(  # RETURNING: the item as it is once its row is ours (see shift_gold_tallies)
        update(Item)
        .where(Item.id == assignment.item_id, Item.round == assignment.round)
        .values(judgment_count=Item.judgment_count + 1)
        .returning(Item.is_gold)
    )
    if gold is None:
        # Cannot happen while regeneration expires the round's leases first (it waits for this lease's lock);
        # a plain Conflict, not Superseded: the insert above must be rolled back with the request.
        raise Conflict(REGENERATED)
    count_judgment(session, project_id=project.id, annotator_id=annotator.id, gold=bool(gold))
    session.flush()
    return judgment, True


def skip_assignment(session: Session, *, project: Project, annotator: User, assignment_id: int, reason: str) -> None:
    """Give the item back; this annotator will not be offered it again."""
    assignment = _get_own_assignment(session, project=project, annotator=annotator, assignment_id=assignment_id)
    if assignment.status in ("submitted", "skipped"):
        raise Conflict(f"This item is already {assignment.status}")
    if assignment.status == "leased":
        session.execute(update(Item).where(Item.id == assignment.item_id).values(claims=Item.claims - 1))
    assignment.status = "skipped"
    assignment.skip_reason = reason.strip()[:2000]
    session.flush()


def get_own_judgment(session: Session, *, project: Project, annotator: User, judgment_id: int) -> Judgment:
    judgment = session.scalar(
        select(Judgment).where(
            Judgment.id == judgment_id, Judgment.project_id == project.id, Judgment.annotator_id == annotator.id
        )
    )
    if judgment is None:
        raise NotFound("No such judgment")
    return judgment


def edit_judgment(
    session: Session, *, project: Project, annotator: User, judgment_id: int, version: int, data: JudgmentIn
) -> Judgment:
    """Replace an own judgment's verdicts if ``version`` is still current; a stale edit is a 409."""
    judgment = get_own_judgment(session, project=project, annotator=annotator, judgment_id=judgment_id)
    assignment = session.get(Assignment, judgment.assignment_id)
    assert assignment is not None
    _validate_verdicts(project, task_for(session, assignment).candidates, data.verdicts)
    bumped = session.execute(
        update(Judgment)
        .where(Judgment.id == judgment.id, Judgment.version == version)
        .values(
            version=Judgment.version + 1,
            reason=data.reason.strip(),
            flag_all_bad=data.all_bad,
            flag_problematic=data.problematic,
            updated_at=utcnow(),
        )
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        session.refresh(judgment)
        raise Conflict(
            f"This judgment was changed elsewhere (now version {judgment.version}, you edited version {version}); "
            "reload it to see the current answer"
        )
    for verdict in session.scalars(select(Verdict).where(Verdict.judgment_id == judgment.id)):
        session.delete(verdict)
    session.flush()
    session.add_all(_verdict_rows(judgment.id, data.verdicts))
    session.flush()
    session.refresh(judgment)
    return judgment


def verdicts_of(session: Session, judgment_ids: list[int]) -> dict[int, dict[str, VerdictIn]]:
    out: dict[int, dict[str, VerdictIn]] = {j: {} for j in judgment_ids}
    if not judgment_ids:
        return out
    for v in session.scalars(select(Verdict).where(Verdict.judgment_id.in_(judgment_ids))):
        out[v.judgment_id][v.dimension] = VerdictIn(
            kind=v.kind,
            chosen=v.chosen_candidate_id,
            rejected=v.rejected_candidate_id,
        )
    return out


def recent_judgments(session: Session, *, project: Project, annotator: User, limit: int = 50) -> list[Judgment]:
    return list(
        session.scalars(
            select(Judgment)
            .where(Judgment.project_id == project.id, Judgment.annotator_id == annotator.id)
            .order_by(Judgment.updated_at.desc(), Judgment.id.desc())
            .limit(limit)
        )
    )


# Project-wide counts on the annotation page may lag this many seconds: 5, or one per 10,000 items in larger
# projects (at most a minute), so that each server process spends about 1% of a CPU recounting whatever the size
# (the count reads every item row: 100 ms at 370k items, and requests that arrive meanwhile share the CPUs).
_COUNTS_TTL = 5.0
_COUNTS_TTL_ITEMS = 10_000
_COUNTS_TTL_MAX = 60.0
_counts_cache: dict[tuple[str, int, datetime], tuple[float, tuple[int, int, int]]] = {}
_counts_recounting: set[tuple[str, int, datetime]] = set()
_counts_lock = threading.Lock()
# Lapsed counts are recounted here, off the request: one thread, so a process never counts a project twice at once.
_counts_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="project-counts")


def _count_project(conn: Connection, project_id: int, overlap: int) -> tuple[int, int, int]:
    with serial_plan(conn):  # a scan of the project's items, every few seconds per process
        totals = conn.execute(
            select(func.count(), func.count().filter(Item.judgment_count >= overlap)).where(
                Item.project_id == project_id, Item.status == "ready"
            )
        ).one()
    members = conn.scalar(select(func.count()).select_from(ProjectMember).where(ProjectMember.project_id == project_id))
    return int(totals[0]), int(totals[1]), int(members or 0)


def warm_counts(db: Database, *, projects: int = 20) -> int:
    """Count the newest ``projects`` projects into this process's cache (before a server takes requests, so
    that the first next-item of each does not count hundreds of thousands of items); returns how many."""
    with db.read_engine.connect() as conn:
        rows = conn.execute(
            select(Project.id, Project.overlap, Project.created_at).order_by(Project.id.desc()).limit(projects)
        ).all()
        url = str(db.write_engine.url)
        for project_id, overlap, created_at in rows:
            _keep_counts((url, project_id, created_at), _count_project(conn, project_id, overlap))
    return len(rows)


def _keep_counts(key: tuple[str, int, datetime], counts: tuple[int, int, int]) -> None:
    with _counts_lock:
        if len(_counts_cache) > 1000:
            _counts_cache.clear()
        _counts_cache[key] = (time.monotonic() + counts_ttl(counts[0]), counts)


def counts_ttl(items: int) -> float:
    """Seconds a project's counts are served before they are counted again."""
    return min(_COUNTS_TTL_MAX, max(_COUNTS_TTL, items / _COUNTS_TTL_ITEMS))


def _recount(engine: Engine, key: tuple[str, int, datetime], project_id: int, overlap: int) -> None:
    try:
        with engine.connect() as conn:
            _keep_counts(key, _count_project(conn, project_id, overlap))
    except Exception:  # the lapsed counts stay; the next request that finds them lapsed tries again
        log.exception("recounting project %s", project_id)
    finally:
        with _counts_lock:
            _counts_recounting.discard(key)


def _project_counts(session: Session, project: Project) -> tuple[int, int, int]:
    """(ready items, items with r judgments, members): counted at most every few seconds per project,
    so that pulling the next item stays cheap in a project of 100k items.

    Only the first request of a process counts; later, lapsed counts are served while a background thread
    recounts them. (A request that recounted itself paid a scan of the project's items — 100 ms and more with
    400k items — and one next-item in fifty did, which was the whole of its p99.)
    """
    key = (str(session.get_bind().engine.url), project.id, project.created_at)
    with _counts_lock:
        hit = _counts_cache.get(key)
        if hit is not None:
            if hit[0] <= time.monotonic() and key not in _counts_recounting:
                _counts_recounting.add(key)
                engine = session.info.get("read_engine") or session.get_bind().engine
                _counts_pool.submit(_recount, engine, key, project.id, project.overlap)
            return hit[1]
    counts = _count_project(session.connection(), project.id, project.overlap)
    _keep_counts(key, counts)
    return counts


def progress(session: Session, *, project: Project, annotator: User) -> Progress:
    """My judged count, my fair share of the project's work, and the project's finished items."""
    judged = judged_count(session, project=project, annotator=annotator)
    items_total, items_done, members = _project_counts(session, project)
    share = math.ceil(items_total * project.overlap / max(members, project.overlap, 1))
    return Progress(
        judged_by_me=judged,
        my_target=min(items_total, share),
        items_done=items_done,
        items_total=items_total,
    )


def verdicts_from_form(form: dict[str, str], *, project: Project, display_order: list[int]) -> dict[str, VerdictIn]:
    """Turn the page's letters (A, B, ... in this annotator's display order) into canonical verdicts.

    k = 2: field ``<dim>`` is ``A`` / ``B`` (that one better), ``tie`` or ``na``.
    k ≥ 3: field ``<dim>`` is ``tie`` / ``na``, or empty (or ``rank``) with ``<dim>__best`` and ``<dim>__worst``.
    """
    letters = {LETTERS[i]: cid for i, cid in enumerate(display_order)}
    verdicts: dict[str, VerdictIn] = {}
    for dim in dimension_keys(project):
        value = (form.get(dim) or "").strip()
        try:
            if value in ("tie", "na"):
                verdicts[dim] = VerdictIn.model_validate({"kind": value})
            elif len(display_order) == 2 and value in letters:
                other = next(c for letter, c in letters.items() if letter != value)
                verdicts[dim] = VerdictIn(kind="preference", chosen=letters[value], rejected=other)
            elif len(display_order) > 2 and value in ("", "rank"):
                best, worst = form.get(f"{dim}__best", ""), form.get(f"{dim}__worst", "")
                if best not in letters or worst not in letters:
                    raise Invalid(
                        f"{dim}: pick both the best and the worst answer"
                        if best or worst
                        else f"{dim}: no answer given"
                    )
                verdicts[dim] = VerdictIn(kind="preference", chosen=letters[best], rejected=letters[worst])
            else:
                raise Invalid(f"{dim}: no answer given")
        except ValueError as exc:  # pydantic's check: best and worst must differ
            raise Invalid(f"{dim}: the best and the worst answer must be different") from exc
    return verdicts


def letters_from_verdicts(verdicts: dict[str, VerdictIn], display_order: list[int]) -> dict[str, str]:
    """The inverse of verdicts_from_form, to fill the form when a judgment is reopened."""
    label = {cid: LETTERS[i] for i, cid in enumerate(display_order)}
    out: dict[str, str] = {}
    for dim, v in verdicts.items():
        if v.kind != "preference":
            out[dim] = v.kind
        elif len(display_order) == 2:
            out[dim] = label.get(v.chosen or -1, "")
        else:
            out[dim] = "rank"
            out[f"{dim}__best"] = label.get(v.chosen or -1, "")
            out[f"{dim}__worst"] = label.get(v.rejected or -1, "")
    return out
