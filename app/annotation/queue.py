"""The assignment queue: which item an annotator gets next, their lease on it, lapsed leases, skipping.

Invariant: ``item.claims`` = live leases + submitted judgments of the item, never above its effective target,
which is never above the project's overlap r (``app.annotation.overlap``: every item wants r, or with adaptive
overlap between r_min and r, raised while its judgments disagree). It is only changed by single
``UPDATE ... SET claims = claims ± 1`` statements, and a claim first locks the item row (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so annotators never wait on each other; SQLite: the whole write transaction is
``BEGIN IMMEDIATE``, so claims are serialised).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Exists, Row, Select, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.annotation import overlap, repository
from app.annotation.dimensions import LETTERS
from app.annotation.tallies import tally
from app.db import for_update, is_postgres
from app.kit.errors import Busy, Conflict, Forbidden, Invalid, NotFound
from app.models import IS_GOLD, Assignment, Candidate, Item, Project, User, utcnow
from app.projects.service import is_paused

# How long a claim waits for other claims holding the last open items before answering "busy" (503).
CLAIM_WAIT_SECONDS = 10.0
# Next-item looks for an unjudged item among this many of the fullest items in progress before taking a fresh one:
# an annotator far ahead of the others has judged most items in progress, and checking each of them cost a scan
# that grew with their lead (2,800 items of their own: 90 ms a next-item).
IN_PROGRESS_WINDOW = 64

# (id, item id, round, status) of an annotator's open and lapsed leases in a project
HeldLeases = Sequence[Row[tuple[int, int, int, str]]]


@dataclass
class Task:
    """A leased item as one annotator sees it: candidates in their display order."""

    assignment: Assignment
    item: Item
    candidates: list[Candidate]

    def label_of(self, candidate_id: int) -> str:
        return LETTERS[[c.id for c in self.candidates].index(candidate_id)]


def expire_leases(session: Session, *, project_id: int, now: datetime | None = None) -> int:
    """Return the items of lapsed leases to the pool; returns how many leases lapsed."""
    now = now or utcnow()
    lapsed = repository.lapsed_leases(session, project_id=project_id, now=now)
    if not lapsed:
        return 0
    session.execute(
        update(Assignment)
        .where(Assignment.id.in_([assignment_id for assignment_id, _ in lapsed]), Assignment.status == "leased")
        .values(status="expired")
    )
    # Items in id order, so that two sweeps never lock them in opposite orders.
    for item_id in sorted({item_id for _, item_id in lapsed}):
        count = sum(1 for _, lapsed_item in lapsed if lapsed_item == item_id)
        session.execute(update(Item).where(Item.id == item_id).values(claims=Item.claims - count))
    return len(lapsed)


def task_for(session: Session, assignment: Assignment, *, candidates: list[Candidate] | None = None) -> Task:
    """The assignment's item and candidates in its display order (``candidates``: of its round, if loaded)."""
    item = session.get(Item, assignment.item_id)
    assert item is not None
    if candidates is None:
        candidates = repository.candidates_of_round(session, item_id=item.id, round_=assignment.round)
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
    assignment = repository.open_lease(session, project_id=project.id, annotator_id=annotator.id)
    if assignment is None:
        return None
    return task_for(session, assignment)


def assign_next_item(session: Session, *, project: Project, annotator: User) -> Task | None:
    """Lease the annotator an item they have not judged, fullest first; None when nothing is left.

    One open lease per annotator: an existing lease is returned (and extended) instead of a new one.
    """
    now = utcnow()
    lease = timedelta(minutes=project.lease_minutes)
    held = repository.held_leases(session, project_id=project.id, annotator_id=annotator.id)
    open_lease = next((assignment_id for assignment_id, _, _, status in held if status == "leased"), None)
    if open_lease is not None:
        assignment = session.get(Assignment, open_lease)
        assert assignment is not None
        task = task_for(session, assignment)
        task.assignment.lease_expires_at = now + lease
        session.flush()
        return task
    expire_leases(session, project_id=project.id, now=now)
    if is_paused(session, project_id=project.id, user_id=annotator.id):
        raise Forbidden("An admin has paused your work in this project; ask them to resume it")
    item = _next_item(session, project=project, annotator=annotator, held=held)
    if item is None:
        return None
    claims = session.scalar(
        update(Item).where(Item.id == item.id).values(claims=Item.claims + 1).returning(Item.claims)
    )
    set_committed_value(item, "claims", claims)  # the row is ours (locked) until commit: no reload needed
    return _lease(session, item=item, annotator=annotator, held=held, now=now, lease=lease)


def _next_item(session: Session, *, project: Project, annotator: User, held: HeldLeases) -> Item | None:
    """The item to lease next (locked on PostgreSQL): a lapsed lease of theirs whose item still has room, a gold
    item when their gold share is due, else the fullest open item, else a remaining gold item."""
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
    # instead of being dropped for another item.
    lapsed_items = [item_id for _, item_id, _, _ in held]  # all "expired" now
    item = None
    if lapsed_items:
        item = repository.lapsed_item_with_room(
            session, room=overlap.has_room(project), annotator_id=annotator.id, item_ids=lapsed_items
        )
    gold_due = item is None and project.gold_share > 0 and _gold_due(session, project=project, annotator=annotator)
    if gold_due:
        item = session.scalar(gold_query)
    if item is None:
        item = _claim_open_item(session, project=project, mine=mine)
    if item is None and not gold_due and project.gold_share > 0:
        item = session.scalar(gold_query)  # nothing else left: the remaining gold checks
    return item


def _lease(session: Session, *, item: Item, annotator: User, held: HeldLeases, now: datetime, lease: timedelta) -> Task:
    """The annotator's lease on ``item`` (claimed already): a new assignment in a random display order, or
    their lapsed one of this item and round again."""
    candidates = repository.candidates_of_round(session, item_id=item.id, round_=item.round)
    # An earlier assignment of theirs to this item and round can only be a lapsed one (the item queries leave out
    # items they hold, judged or skipped), and those were all read with ``held``.
    earlier = next((assignment_id for assignment_id, i, r, _ in held if (i, r) == (item.id, item.round)), None)
    assignment = session.get(Assignment, earlier) if earlier is not None else None
    if assignment is None:
        order = [c.id for c in candidates]
        random.shuffle(order)
        assignment = Assignment(
            project_id=item.project_id,
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
    """The open item to lease next (locked on PostgreSQL): the first of the fullest items in progress (a window of
    them) that is not the annotator's, else the first fresh one (by id, or the judge's least sure first), else —
    only when none is left of either, near a project's end — any open item not theirs. Each query is built only
    when reached."""
    ready = (Item.project_id == project.id, Item.status == "ready", Item.is_gold.is_(False))
    fullest = (Item.claims.desc(), Item.id)
    room = overlap.has_room(project)
    item = None
    if overlap.is_adaptive(project):
        # Reopened items (claims ≥ r_min) are the fullest in progress; their own partial index finds them without
        # walking the complete items that share their claim counts.
        reopened = (Item.target.is_not(None), Item.claims < Item.target, Item.claims < project.overlap)
        item = _first_in_window(session, project=project, mine=mine, where=(*ready, *reopened), room=room)
    if item is None:
        # Claims in (0, r_min): a range of the queue index, complete items (claims = their target ≥ r_min) outside it
        started = (Item.claims > 0, Item.claims < overlap.r_min(project))
        item = _first_in_window(session, project=project, mine=mine, where=(*ready, *started), room=room)
    if item is None:
        item = _first_fresh(session, project=project, mine=mine, ready=ready)
    if item is None:
        anything = select(Item).where(*ready, room, ~mine).order_by(*fullest).limit(1)
        item = _lock_open_item(session, anything) if is_postgres(session) else session.scalar(anything)
    return item


def _first(session: Session, query: Select[tuple[Item]]) -> Item | None:
    """The first item of ``query`` that no other transaction holds (locked on PostgreSQL)."""
    return session.scalar(for_update(session, query, skip_locked=True, of=Item))


def _first_in_window(
    session: Session,
    *,
    project: Project,
    mine: Exists,
    where: tuple[ColumnElement[bool], ...],
    room: ColumnElement[bool],
) -> Item | None:
    """Of the fullest ``IN_PROGRESS_WINDOW`` items matching ``where``, the first that is not the annotator's."""
    fullest = (Item.claims.desc(), Item.id)
    window = select(Item.id).where(*where).order_by(*fullest).limit(IN_PROGRESS_WINDOW)
    in_window = select(Item).where(Item.id.in_(window), ~mine)
    if is_postgres(session):
        # PostgreSQL checks a row it has just locked against the conditions of the query itself once more (another
        # claim may have filled it since the statement began), not against those of the window's subquery: they
        # are repeated outside it, or an item could be claimed past its target. (On SQLite they would lead its
        # planner to scan the queue index instead of looking the window's ids up.)
        in_window = in_window.where(*where, room)
    return _first(session, in_window.order_by(*fullest).limit(1))


def _first_fresh(
    session: Session, *, project: Project, mine: Exists, ready: tuple[ColumnElement[bool], ...]
) -> Item | None:
    """The first item nobody has claimed: oldest first, or with "uncertain first" the items the judge is least sure
    of (lowest confidence), then those it has not judged yet, then those it is confident about (JUDGE_CONFIDENT)."""
    # claims = 0 alone (no "< r" beside it): SQLite then walks the queue index in id order and stops early
    fresh = select(Item).where(*ready, Item.claims == 0, ~mine)
    if project.queue_order != "uncertain_first":
        return _first(session, fresh.order_by(Item.id).limit(1))
    confidence = Item.judge_confidence
    bands = (
        (confidence < overlap.JUDGE_CONFIDENT, (confidence, Item.id)),
        (confidence.is_(None), (Item.id,)),
        (confidence >= overlap.JUDGE_CONFIDENT, (confidence, Item.id)),
    )
    for band, order in bands:  # each band a range of ix_item_uncertain, read in its order
        item = _first(session, fresh.where(band).order_by(*order).limit(1))
        if item is not None:
            return item
    return None


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
    judged, gold = tally(session, project=project, annotator=annotator)
    return gold < project.gold_share * (judged + 1)


def own_assignment(session: Session, *, project: Project, annotator: User, assignment_id: int) -> Assignment:
    """The annotator's assignment in the project (locked on PostgreSQL), else NotFound."""
    assignment = repository.own_assignment(
        session, project_id=project.id, annotator_id=annotator.id, assignment_id=assignment_id
    )
    if assignment is None:
        raise NotFound("No such assignment")
    return assignment


def display_order_of(session: Session, *, project: Project, annotator: User, assignment_id: int) -> list[int]:
    """The candidate ids of the annotator's assignment in the order their page showed them (the letters of a
    posted form are read against it); a 422 when the assignment is not theirs (any more)."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.annotator_id != annotator.id or assignment.project_id != project.id:
        raise Invalid("This item is no longer yours; reload the page")
    return assignment.display_order


def skip_assignment(session: Session, *, project: Project, annotator: User, assignment_id: int, reason: str) -> None:
    """Give the item back; this annotator will not be offered it again."""
    assignment = own_assignment(session, project=project, annotator=annotator, assignment_id=assignment_id)
    if assignment.status in ("submitted", "skipped"):
        raise Conflict(f"This item is already {assignment.status}")
    if assignment.status == "leased":
        session.execute(update(Item).where(Item.id == assignment.item_id).values(claims=Item.claims - 1))
    assignment.status = "skipped"
    assignment.skip_reason = reason.strip()[:2000]
    session.flush()
