"""Reading judgments back: a list of them reads its items in one query, not one per judgment."""

from __future__ import annotations

from sqlalchemy import event

from app.annotation.judgments import items_of, recent_judgments, submit_judgment
from app.annotation.queue import assign_next_item
from app.db import Database
from app.models import Project, User
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user


def test_the_items_of_recent_judgments_are_read_in_one_query(db: Database) -> None:
    with db.session() as s:
        me = make_user(s, "lister")
        project = make_project(s, "listed", k=2, overlap=1, members=[me], gold_share=0.0)
        make_items(s, project, 3)
        for n in range(3):
            task = assign_next_item(s, project=project, annotator=me)
            assert task is not None
            submit_judgment(
                s,
                project=project,
                annotator=me,
                assignment_id=task.assignment.id,
                submit_key=f"listed-{n:04d}",
                data=prefer_first(task, project),
            )
        project_id, me_id = project.id, me.id
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    with db.session(write=False) as s:
        project, me = s.get(Project, project_id), s.get(User, me_id)
        assert project is not None and me is not None
        judgments = recent_judgments(s, project=project, annotator=me)
        engine = s.get_bind()
        event.listen(engine, "after_cursor_execute", record)
        try:
            items = items_of(s, judgments)
        finally:
            event.remove(engine, "after_cursor_execute", record)
    assert len(judgments) == 3
    assert sorted(items) == sorted(j.item_id for j in judgments)
    assert all(items[j.item_id].id == j.item_id for j in judgments)
    assert len([sql for sql in statements if "FROM item" in sql]) == 1
