"""Re-opening a skipped item: it becomes the annotator's lease again while it has room; a lease they held on
another item goes back to the pool and is offered to them next."""

from __future__ import annotations

import pytest

from app.annotation.queue import assign_next_item, skip_assignment
from app.annotation.skips import reopen_skipped, skipped
from app.db import Database
from app.kit.errors import Conflict, NotFound
from app.models import Assignment, Item
from tests.factories import make_items, make_project, make_user


def test_a_skipped_item_comes_back_and_the_held_lease_waits(db: Database) -> None:
    with db.session() as s:
        ann, other = make_user(s, "ann"), make_user(s, "other")
        project = make_project(s, "p", overlap=2, members=[ann, other], gold_share=0)
        make_items(s, project, 3)
        first = assign_next_item(s, project=project, annotator=ann)
        assert first is not None
        skip_assignment(s, project=project, annotator=ann, assignment_id=first.assignment.id, reason="unsure")
        assert [a.id for a in skipped(s, project=project, annotator=ann)] == [first.assignment.id]
        second = assign_next_item(s, project=project, annotator=ann)
        assert second is not None and second.item.id != first.item.id
        claims_before = s.get(Item, first.item.id).claims  # type: ignore[union-attr]

        again = reopen_skipped(s, project=project, annotator=ann, assignment_id=first.assignment.id)
        assert again.id == first.assignment.id and again.status == "leased" and again.skip_reason is None
        assert s.get(Item, first.item.id).claims == claims_before + 1  # type: ignore[union-attr]
        held = s.get(Assignment, second.assignment.id)
        assert held is not None and held.status == "expired"
        assert skipped(s, project=project, annotator=ann) == []
        # The lease they held comes back as soon as this one is done
        skip_assignment(s, project=project, annotator=ann, assignment_id=again.id, reason="")
        back = assign_next_item(s, project=project, annotator=ann)
        assert back is not None and back.assignment.id == second.assignment.id
        with pytest.raises(Conflict):  # not skipped any more
            reopen_skipped(s, project=project, annotator=ann, assignment_id=back.assignment.id)
        with pytest.raises(NotFound):  # not theirs
            reopen_skipped(s, project=project, annotator=other, assignment_id=again.id)


def test_a_full_item_cannot_be_reopened(db: Database) -> None:
    with db.session() as s:
        ann, b = make_user(s, "ann"), make_user(s, "b")
        project = make_project(s, "p", overlap=1, members=[ann, b], gold_share=0)
        make_items(s, project, 1)
        task = assign_next_item(s, project=project, annotator=ann)
        assert task is not None
        skip_assignment(s, project=project, annotator=ann, assignment_id=task.assignment.id, reason="")
        taken = assign_next_item(s, project=project, annotator=b)
        assert taken is not None and taken.item.id == task.item.id
        with pytest.raises(Conflict, match="all the annotators"):
            reopen_skipped(s, project=project, annotator=ann, assignment_id=task.assignment.id)
