"""Active selection: with "uncertain first" the queue hands out the fresh items the judge is least sure of first,
then those it has not judged, then the confident ones, while items in progress are still finished first and the
gold share is kept."""

from __future__ import annotations

from sqlalchemy import select

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item, skip_assignment
from app.db import Database
from app.models import Item, Judgment, Project, User
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user

CONFIDENCES = [0.95, None, 0.1, 0.5, None, 0.85, 0.0]


def _setup(db: Database, *, order: str, annotators: int = 1, **fields: object) -> tuple[int, list[int], list[int]]:
    with db.session() as s:
        users = [make_user(s, f"as-{i}") for i in range(annotators)]
        fields = {"overlap": 1, "gold_share": 0.0, **fields}
        project = make_project(s, "active", k=2, members=users, queue_order=order, **fields)
        items = make_items(s, project, len(CONFIDENCES))
        for item, confidence in zip(items, CONFIDENCES, strict=True):
            item.judge_confidence = confidence
        return project.id, [u.id for u in users], [i.id for i in items]


def _take(db: Database, project_id: int, user_id: int, *, submit: bool = True) -> int | None:
    """The item id next-item gives the user (judged, or skipped so that they move on)."""
    with db.session() as s:
        project, user = s.get(Project, project_id), s.get(User, user_id)
        assert project is not None and user is not None
        task = assign_next_item(s, project=project, annotator=user)
        if task is None:
            return None
        if submit:
            submit_judgment(
                s,
                project=project,
                annotator=user,
                assignment_id=task.assignment.id,
                submit_key=f"as-{task.assignment.id}",
                data=prefer_first(task, project),
            )
        else:
            skip_assignment(s, project=project, annotator=user, assignment_id=task.assignment.id, reason="next")
        return task.item.id


def test_uncertain_first_hands_out_unsure_then_unjudged_then_confident(db: Database) -> None:
    project_id, (me,), items = _setup(db, order="uncertain_first")
    taken = [_take(db, project_id, me) for _ in CONFIDENCES]
    by_confidence = [CONFIDENCES[items.index(i)] for i in taken if i is not None]
    assert by_confidence == [0.0, 0.1, 0.5, None, None, 0.85, 0.95]
    unjudged = [i for i, c in zip(items, CONFIDENCES, strict=True) if c is None]
    assert [i for i in taken if i in unjudged] == unjudged  # oldest first among those the judge has not seen
    assert _take(db, project_id, me) is None


def test_fullest_first_keeps_the_id_order(db: Database) -> None:
    project_id, (me,), items = _setup(db, order="fullest_first")
    assert [_take(db, project_id, me) for _ in CONFIDENCES] == items


def test_items_in_progress_still_come_before_uncertain_fresh_ones(db: Database) -> None:
    project_id, (first, second), items = _setup(db, order="uncertain_first", annotators=2, overlap=2)
    started = _take(db, project_id, first)
    assert started == items[CONFIDENCES.index(0.0)]
    # The second annotator finishes the item in progress before the next most uncertain fresh one.
    assert _take(db, project_id, second) == started
    assert _take(db, project_id, second) == items[CONFIDENCES.index(0.1)]


def test_uncertain_first_keeps_the_gold_share(db: Database) -> None:
    project_id, (me,), items = _setup(db, order="uncertain_first", gold_share=0.5)
    with db.session() as s:
        gold = s.get(Item, items[0])
        assert gold is not None
        gold.is_gold, gold.gold = True, {"overall": {"kind": "either"}}
    taken = [_take(db, project_id, me) for _ in range(3)]
    assert taken[0] == items[0]  # 0 of 0 judged were gold: gold is due first
    assert taken[1:] == [items[CONFIDENCES.index(0.0)], items[CONFIDENCES.index(0.1)]]
    with db.session(write=False) as s:
        assert len(s.scalars(select(Judgment.id)).all()) == 3


def test_uncertain_first_never_passes_an_item_over_its_target(db: Database) -> None:
    project_id, users, items = _setup(db, order="uncertain_first", annotators=3, overlap=3, overlap_min=2)
    for user_id in users:
        while _take(db, project_id, user_id) is not None:
            pass
    with db.session(write=False) as s:
        rows = s.execute(select(Item.judgment_count, Item.target, Item.claims)).all()
    for count, target, claims in rows:  # everyone prefers their first shown candidate: some agree, some not
        assert claims == count and 2 <= count <= (target or 2) <= 3
