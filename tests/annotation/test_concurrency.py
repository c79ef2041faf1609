"""Many annotators at once: no item over r (or over its target, with adaptive overlap), none lost, one judgment
per double-submit."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.db import Database
from app.models import AnnotatorTally, Assignment, Item, Judgment, Project, User
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user

ANNOTATORS = 24
ITEMS = 40
OVERLAP = 3


def _annotate_until_done(db: Database, project_id: int, user_id: int, errors: list[BaseException]) -> int:
    done = 0
    try:
        while True:
            with db.session() as s:
                project, user = s.get(Project, project_id), s.get(User, user_id)
                assert project is not None and user is not None
                task = assign_next_item(s, project=project, annotator=user)
                if task is None:
                    return done
                lease_id, data = task.assignment.id, prefer_first(task, project)
            with db.session() as s:
                project, user = s.get(Project, project_id), s.get(User, user_id)
                assert project is not None and user is not None
                _, created = submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=lease_id,
                    submit_key=f"u{user_id}-a{lease_id}",
                    data=data,
                )
                done += int(created)
    except BaseException as exc:  # surfaced by the test below
        errors.append(exc)
        raise


def test_many_annotators_fill_every_item_exactly_r_times(db: Database) -> None:
    with db.session() as s:
        users = [make_user(s, f"c{i}") for i in range(ANNOTATORS)]
        project = make_project(s, "crowd", k=2, overlap=OVERLAP, members=users)
        make_items(s, project, ITEMS)
        project_id, user_ids = project.id, [u.id for u in users]

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=ANNOTATORS) as pool:
        counts = list(pool.map(lambda uid: _annotate_until_done(db, project_id, uid, errors), user_ids))

    assert errors == []
    assert sum(counts) == ITEMS * OVERLAP
    with db.session(write=False) as s:
        per_item = Counter(s.scalars(select(Judgment.item_id)))
        assert len(per_item) == ITEMS and set(per_item.values()) == {OVERLAP}
        pairs = s.execute(select(Judgment.item_id, Judgment.annotator_id)).all()
        assert len(pairs) == len(set(pairs))  # distinct annotators per item
        assert set(s.scalars(select(Item.judgment_count))) == {OVERLAP}
        assert set(s.scalars(select(Item.claims))) == {OVERLAP}
        assert s.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "leased")) == 0
        judged = Counter(s.scalars(select(Judgment.annotator_id)))
        tallies = {
            row.annotator_id: row.judged
            for row in s.execute(select(AnnotatorTally.annotator_id, AnnotatorTally.judged))
        }
        assert tallies == dict(judged)


def test_parallel_double_submit_creates_one_judgment(db: Database) -> None:
    with db.session() as s:
        user = make_user(s, "clicker")
        project = make_project(s, "dbl", k=2, overlap=1, members=[user])
        make_items(s, project, 1)
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None
        project_id, user_id, lease_id, data = project.id, user.id, task.assignment.id, prefer_first(task, project)

    barrier = threading.Barrier(5)

    def submit(n: int) -> tuple[int, bool]:
        barrier.wait()
        with db.session() as s:
            project, user = s.get(Project, project_id), s.get(User, user_id)
            assert project is not None and user is not None
            # Half the clicks reuse one key, the rest carry their own: all must land on one judgment.
            j, created = submit_judgment(
                s,
                project=project,
                annotator=user,
                assignment_id=lease_id,
                submit_key="same-key-0001" if n % 2 else f"other-key-{n:04d}",
                data=data,
            )
            return j.id, created

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(submit, range(5)))

    assert len({jid for jid, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 1
        assert s.scalar(select(Item.judgment_count)) == 1


ADAPTIVE_ANNOTATORS = 50
ADAPTIVE_ITEMS = 60


def _annotate_split(db: Database, project_id: int, user_id: int, errors: list[BaseException]) -> int:
    """Like ``_annotate_until_done``, with annotators of odd ids preferring the last candidate: votes split."""
    done = 0
    try:
        while True:
            with db.session() as s:
                project, user = s.get(Project, project_id), s.get(User, user_id)
                assert project is not None and user is not None
                task = assign_next_item(s, project=project, annotator=user)
                if task is None:
                    return done
                if user_id % 2:
                    task.candidates.reverse()
                lease_id, data = task.assignment.id, prefer_first(task, project)
            with db.session() as s:
                project, user = s.get(Project, project_id), s.get(User, user_id)
                assert project is not None and user is not None
                _, created = submit_judgment(
                    s, project=project, annotator=user, assignment_id=lease_id, submit_key=f"a{lease_id}", data=data
                )
                done += int(created)
    except BaseException as exc:  # surfaced by the test below
        errors.append(exc)
        raise


def test_fifty_annotators_with_adaptive_overlap_keep_every_item_within_its_target(db: Database) -> None:
    # SQLite serialises write transactions: 50 threads there would only queue, so it runs with eight.
    annotators = ADAPTIVE_ANNOTATORS if db.write_engine.dialect.name == "postgresql" else 8
    with db.session() as s:
        users = [make_user(s, f"ad{i}") for i in range(annotators)]
        project = make_project(
            s, "crowd-adaptive", k=2, overlap=5, overlap_min=2, queue_order="uncertain_first", members=users
        )
        for n, item in enumerate(make_items(s, project, ADAPTIVE_ITEMS)):
            item.judge_confidence = (n % 10) / 10 if n % 3 else None
        project_id, user_ids = project.id, [u.id for u in users]

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=annotators) as pool:
        counts = list(pool.map(lambda uid: _annotate_split(db, project_id, uid, errors), user_ids))

    assert errors == []
    with db.session(write=False) as s:
        items = s.execute(select(Item.id, Item.judgment_count, Item.claims, Item.target)).all()
        per_item = Counter(s.scalars(select(Judgment.item_id)))
        assert sum(counts) == sum(per_item.values())
        for item_id, judged, claims, target in items:
            wanted = target or 2
            assert per_item[item_id] == judged == claims, f"item {item_id}: counts disagree"
            assert 2 <= judged <= 5 and judged == wanted, f"item {item_id}: {judged} judgments, target {target}"
        assert any(target for _, _, _, target in items), "split votes reopened no item"
        pairs = s.execute(select(Judgment.item_id, Judgment.annotator_id)).all()
        assert len(pairs) == len(set(pairs))
        assert s.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "leased")) == 0
