"""The judge page: who may see it, the settings form (keys masked, mistakes shown with what was typed), starting
and cancelling a judge job, and the coverage count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import Item, Job, Project, Suggestion, User
from tests.factories import make_item, make_project, make_user

PAGE = "/projects/j/judge"
SERVER = "http://127.0.0.1:8011"
FORM = {"judges": f"judge-a@{SERVER}/v1", "rubric": "", "concurrency": "8", "max_candidate_chars": "500"}


@pytest.fixture
def users(db: Database) -> dict[str, User]:
    with db.session() as s:
        admin, ann = make_user(s, "boss", role="admin"), make_user(s, "worker")
        project = make_project(s, "j", k=2, overlap=1, members=[ann])
        for i in range(3):
            make_item(s, project, f"p{i}")
        s.commit()
        return {"admin": admin, "annotator": ann}


def _stored(db: Database) -> dict[str, Any]:
    with db.session() as s:
        project = s.query(Project).filter_by(slug="j").one()
        return dict(project.judge or {})


def test_annotators_are_refused(client: TestClient, users: dict[str, User], login_as: Callable[[User], str]) -> None:
    login_as(users["annotator"])
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE + "/settings", data=FORM).status_code == 403
    assert client.post(PAGE + "/start").status_code == 403
    assert "/judge" not in client.get("/projects/j").text  # no link for them


def test_settings_saved_and_the_key_masked(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database
) -> None:
    login_as(users["admin"])
    assert 'href="/projects/j/judge"' in client.get("/projects/j").text
    saved = client.post(
        PAGE + "/settings", data={**FORM, "api_key": "sk-judge", "rationale": "1"}, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text
    stored = _stored(db)
    assert [(j["model"], j["base_url"], j["api_key"]) for j in stored["judges"]] == [("judge-a", SERVER, "sk-judge")]
    assert stored["concurrency"] == 8 and stored["max_candidate_chars"] == 500 and stored["rationale"] is True
    page = client.get(PAGE).text
    assert "sk-judge" not in page and 'placeholder="••••"' in page and 'name="clear_api_key"' in page
    assert f"judge-a@{SERVER}" in page and "You are an impartial judge" in page  # the built-in rubric shown
    # A blank key keeps the stored one; the box forgets it.
    mine = "Judge {dimension}: {prompt}\n{candidates}"
    client.post(PAGE + "/settings", data={**FORM, "rubric": mine})
    assert _stored(db)["judges"][0]["api_key"] == "sk-judge" and _stored(db)["rubric"] == mine
    assert _stored(db)["rationale"] is False
    client.post(PAGE + "/settings", data={**FORM, "clear_api_key": "1"})
    assert _stored(db)["judges"][0]["api_key"] is None


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        ("judges", "judge-a@ftp://example.org", "base_url"),
        ("judges", "just-a-model", "model@base_url"),
        ("concurrency", "many", "A number is malformed"),
        ("concurrency", "0", "concurrency"),
    ],
)
def test_a_mistake_shows_the_form_again_with_what_was_typed(
    client: TestClient,
    users: dict[str, User],
    login_as: Callable[[User], str],
    db: Database,
    field: str,
    typed: str,
    said: str,
) -> None:
    login_as(users["admin"])
    response = client.post(PAGE + "/settings", data={**FORM, field: typed, "rubric": "my own rubric"})
    assert response.status_code == 422
    assert 'id="settings-error"' in response.text and said in response.text
    assert typed in response.text and "my own rubric" in response.text  # what was typed stays
    assert _stored(db) == {}  # nothing saved


def test_start_queues_a_judge_job_and_says_why_it_cannot(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database
) -> None:
    login_as(users["admin"])
    refused = client.post(PAGE + "/start")
    assert refused.status_code == 409 and "No judge is configured" in refused.text
    client.post(PAGE + "/settings", data={**FORM, "judges": f"a@{SERVER}\nb@{SERVER}"})
    started = client.post(PAGE + "/start", follow_redirects=False)
    assert started.status_code == 303
    with db.session() as s:
        job = s.query(Job).one()
        assert job.kind == "judge" and job.state == "queued" and job.progress_total == 6
        assert job.params["judges"] == [f"a@{SERVER}", f"b@{SERVER}"]
    page = client.get(PAGE).text
    assert f"<td>{job.id}</td>" in page and 'hx-trigger="every 1s"' in page
    again = client.post(PAGE + "/start")
    assert again.status_code == 409 and f"#{job.id} is still running" in again.text
    fragment = client.get(PAGE + "/jobs", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "queued" in fragment.text
    assert client.post(f"{PAGE}/jobs/{job.id}/cancel", follow_redirects=False).status_code == 303
    with db.session() as s:
        assert s.get(Job, job.id).state == "cancelled"  # type: ignore[union-attr]


def test_start_without_ready_items_is_a_readable_422(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database
) -> None:
    with db.session() as s:
        project = make_project(s, "empty", k=2, overlap=1, judge={"judges": [{"model": "m", "base_url": SERVER}]})
        make_item(s, project, "no candidates yet", candidates=[])
        s.commit()
    login_as(users["admin"])
    response = client.post("/projects/empty/judge/start")
    assert response.status_code == 422 and "No items with candidates to judge" in response.text


def test_coverage_counts_judged_items_and_the_unsure_share(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database
) -> None:
    with db.session() as s:
        project = s.query(Project).filter_by(slug="j").one()
        ids = list(s.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.id)))
        rows = ((ids[0], "unsure", "a"), (ids[1], "tie", "a"), (ids[1], "unsure", "b"), (ids[1], "tie", "c"))
        s.add_all(_suggestion(project.id, item_id, kind, dim) for item_id, kind, dim in rows)
        s.commit()
    login_as(users["admin"])
    text = client.get(PAGE).text
    assert "2 of 3 ready items have a suggestion" in text and "Unsure: 50.0 % of 4 suggestions" in text


def _suggestion(project_id: int, item_id: int, kind: str, dimension: str) -> Suggestion:
    return Suggestion(
        project_id=project_id,
        item_id=item_id,
        round=0,
        dimension=dimension,
        judge=f"m@{SERVER}",
        model="m",
        base_url=SERVER,
        prompt_version="v",
        kind=kind,
    )


def test_forms_need_the_csrf_token(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database
) -> None:
    login_as(users["admin"])
    del client.headers["X-CSRF-Token"]
    assert client.post(PAGE + "/settings", data=FORM).status_code == 403
    assert client.post(PAGE + "/start").status_code == 403
    assert _stored(db) == {}
