"""Skipped items: the annotator's list of them, and re-opening one (it becomes their lease again)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.annotation import overlap, repository
from app.annotation.queue import own_assignment
from app.i18n import gettext
from app.kit.errors import Conflict, Forbidden
from app.models import IS_GOLD, Assignment, Item, Project, User, utcnow
from app.projects.service import is_paused


def skipped(session: Session, *, project: Project, annotator: User, limit: int = 50) -> list[Assignment]:
    """The annotator's skipped items in the project (their assignments), last skipped first."""
    return repository.skipped_assignments(session, project_id=project.id, annotator_id=annotator.id, limit=limit)


def _release(session: Session, assignment: Assignment) -> None:
    """Give a lease's item back to the pool as if the lease had lapsed: it is offered to its annotator again
    first (same assignment, same display order, so the page's draft of it comes back too)."""
    session.execute(update(Item).where(Item.id == assignment.item_id).values(claims=Item.claims - 1))
    assignment.status = "expired"
    assignment.lease_expires_at = utcnow()


def reopen_skipped(session: Session, *, project: Project, annotator: User, assignment_id: int) -> Assignment:
    """Lease a skipped item to its annotator again (same candidates, same order) while it is the item's current
    round and still has room. An open lease of theirs on another item is given back and comes back next."""
    assignment = own_assignment(session, project=project, annotator=annotator, assignment_id=assignment_id)
    if is_paused(session, project_id=project.id, user_id=annotator.id):
        raise Forbidden("An admin has paused your work in this project; ask them to resume it")
    if assignment.status != "skipped":
        raise Conflict(gettext("This item is not skipped any more"))
    current = repository.open_lease(session, project_id=project.id, annotator_id=annotator.id)
    taken = session.execute(
        update(Item)
        .where(
            Item.id == assignment.item_id,
            Item.round == assignment.round,
            Item.status == "ready",
            IS_GOLD | overlap.has_room(project),
        )
        .values(claims=Item.claims + 1)
    )
    if taken.rowcount == 0:  # type: ignore[attr-defined]
        if repository.item_round(session, assignment.item_id) != assignment.round:
            raise Conflict(
                gettext("This item's candidates were regenerated since you skipped it; the new ones are in the queue")
            )
        raise Conflict(gettext("This item has all the annotators it needs now; it cannot be re-opened"))
    if current is not None:
        _release(session, current)
    now = utcnow()
    assignment.status = "leased"
    assignment.skip_reason = None
    assignment.leased_at = now
    assignment.lease_expires_at = now + timedelta(minutes=project.lease_minutes)
    session.flush()
    return assignment
