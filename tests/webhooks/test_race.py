"""Two submits that complete a project's last two items at the same moment: each, alone, would see the other's
item still open and neither would tell. The completion check takes the webhooks' rows in turn, so exactly one
event is queued. PostgreSQL only: SQLite runs one writer at a time, so there the moment cannot happen."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.db import Database
from app.models import Project, User, Webhook, WebhookDelivery
from app.webhooks import events
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user
from tests.webhooks.conftest import Receiver


def test_two_last_judgments_at_once_announce_the_completion_once(
    backend: str, db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite runs one writer at a time: two submits never overlap")
    with db.session() as s:
        one, two = make_user(s, "one"), make_user(s, "two")
        project = make_project(s, "race", k=2, overlap=1, members=[one, two])
        make_items(s, project, 2)
        s.add(Webhook(project_id=project.id, url=receiver.url, events=[events.PROJECT_COMPLETED], secret="whsec_x"))
        leases = {}
        for user in (one, two):
            task = assign_next_item(s, project=project, annotator=user)
            assert task is not None
            leases[user.id] = (task.assignment.id, prefer_first(task, project))
    both_counted = threading.Barrier(2, timeout=20)
    real = events.subscribed

    def after_both_counted(*args: Any, **kwargs: Any) -> Any:
        both_counted.wait()  # each submit has counted its item (its row updated, not committed) before looking
        return real(*args, **kwargs)

    monkeypatch.setattr(events, "subscribed", after_both_counted)
    errors: list[BaseException] = []

    def submit(user_id: int) -> None:
        try:
            with db.session() as s:
                project = s.scalar(select(Project).where(Project.slug == "race"))
                user = s.get(User, user_id)
                assert project is not None and user is not None
                assignment_id, data = leases[user_id]
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=assignment_id,
                    submit_key=f"race-key-{user_id:04d}",
                    data=data,
                )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(user_id,)) for user_id in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with db.session(write=False) as s:
        queued = [d.event for d in s.scalars(select(WebhookDelivery))]
    assert queued == ["project.completed"]
