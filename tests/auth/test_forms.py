"""The account and language forms read blank fields as FastAPI's ``Form()`` parameters did: a blank required
field is "Field required", a blank optional one takes its default; limits are 422s naming the field; and who may
post is checked before what was posted."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import service
from app.db import Database
from app.models import User
from tests.conftest import csrf_from
from tests.factories import make_project, make_user


def test_a_blank_required_field_is_missing_and_a_blank_optional_one_takes_its_default(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    blank_name = client.post("/admin/users", data={"username": "", "password": "password123"})
    assert blank_name.status_code == 422
    assert "username: Field required" in blank_name.text
    added = client.post(
        "/admin/users", data={"username": "fresh", "password": "password123", "role": ""}, follow_redirects=False
    )
    assert added.status_code == 303
    with db.session(write=False) as s:
        assert s.scalar(select(User.role).where(User.username == "fresh")) == "annotator"
    blank_password = client.post(f"/admin/users/{admin.id}/password", data={"password": ""})
    assert blank_password.status_code == 422
    assert "password: Field required" in blank_password.text


def test_login_with_a_blank_next_goes_to_the_projects_and_an_overlong_name_is_a_422(
    client: TestClient, db: Database
) -> None:
    with db.session() as s:
        make_user(s, "ann")
    token = csrf_from(client.get("/login").text)
    form = {"username": "ann", "password": "password123", "csrf_token": token}
    too_long = client.post("/login", data={**form, "username": "a" * 201})
    assert too_long.status_code == 422
    assert "username: String should have at most 200 characters" in too_long.text
    done = client.post("/login", data={**form, "next": ""}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/projects")


def test_the_language_form_needs_a_language(client: TestClient) -> None:
    token = csrf_from(client.get("/login").text)
    blank = client.post("/settings/language", data={"language": "", "csrf_token": token})
    assert blank.status_code == 422
    assert "language: Field required" in blank.text


def test_who_may_post_is_checked_before_what_was_posted(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
        make_project(s, "proj", members=[ann])
    login_as(ann)
    assert client.post("/admin/users", data={"username": "", "password": "x" * 2000}).status_code == 403
    assert client.post("/projects/proj/edit", data={"k": "two"}).status_code == 403


def test_the_users_page_reads_users_and_their_project_counts_from_the_service(db: Database) -> None:
    with db.session() as s:
        first, second = make_user(s, "zed", role="admin"), make_user(s, "amy", role="admin")
        loner = make_user(s, "bob")
        make_project(s, "one", members=[first, second])
        make_project(s, "two", members=[second])
        assert [u.username for u in service.list_users(s)] == ["amy", "bob", "zed"]
        assert service.project_counts(s) == {first.id: 1, second.id: 2}
        assert loner.id not in service.project_counts(s)
        assert service.first_admin(s) is first
