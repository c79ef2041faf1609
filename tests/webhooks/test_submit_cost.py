"""What the completion check adds to a submit: nothing unless the judgment brings its item to its target, then
one query on the project's webhooks (by the project's index) when none subscribes to ``project.completed``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.db import Database
from app.models import Project, User, Webhook
from app.webhooks.events import SNAPSHOT_READY
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.write_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.write_engine, "before_cursor_execute", record)


def test_a_submit_reads_the_webhooks_only_when_its_item_is_complete(db: Database) -> None:
    with db.session() as s:
        one, two = make_user(s, "one"), make_user(s, "two")
        project = make_project(s, "cost", k=2, overlap=2, members=[one, two])
        make_items(s, project, 2)
        s.add(Webhook(project_id=project.id, url="http://127.0.0.1:9/", events=[SNAPSHOT_READY], secret="whsec_x"))
    touched = []
    for n, username in enumerate(("one", "two")):
        with db.session() as s, statements(db) as seen:
            project = s.query(Project).filter_by(slug="cost").one()
            user = s.query(User).filter_by(username=username).one()
            task = assign_next_item(s, project=project, annotator=user)  # both get the fuller item
            assert task is not None
            submit_judgment(
                s,
                project=project,
                annotator=user,
                assignment_id=task.assignment.id,
                submit_key=f"cost-key-{n:04d}",
                data=prefer_first(task, project),
            )
        touched.append([q for q in seen if "webhook" in q])
    first, completing = touched
    assert first == []  # 1 of 2 judgments: not even a look
    assert len(completing) == 1 and "webhook.project_id" in completing[0]  # no subscriber: that one look
