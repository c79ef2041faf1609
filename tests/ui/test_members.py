"""Members on the project page and users on /admin/users: an unknown username is answered on the page (not a
404 page), several users are added at once (all or none), and an admin is never offered to switch themselves off."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db import Database
from app.models import ProjectMember, User
from tests.factories import make_project, make_user


def _setup(db: Database) -> None:
    with db.session() as s:
        boss = make_user(s, "boss", role="admin")
        for name in ("alice", "bob", "carol"):
            make_user(s, name)
        make_project(s, "team", name="Team project", members=[boss])
        s.commit()


def _members(db: Database) -> set[str]:
    with db.session(write=False) as s:
        return set(s.scalars(select(User.username).join(ProjectMember, ProjectMember.user_id == User.id)))


def test_an_unknown_member_is_an_inline_error_and_nobody_is_added(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/team")
    page.fill("#member-names", "alice\nnobody, ghost")
    page.click("#members button[type=submit]:text('Add members')")
    error = page.locator("#member-error")
    error.wait_for()
    assert "nobody" in error.inner_text() and "ghost" in error.inner_text()
    assert page.url == f"{base}/projects/team"
    assert page.locator("h1").inner_text() == "Team project"  # still the project page, not an error page
    assert page.input_value("#member-names") == "alice\nnobody, ghost"  # what was typed is kept
    assert _members(db) == {"boss"}  # all or none
    shots(page, "members-unknown-inline-error")


def test_several_members_are_added_at_once(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/team")
    page.fill("#member-names", "alice, bob\ncarol")
    page.click("#members button[type=submit]:text('Add members')")
    page.locator("#members .flash.ok").wait_for()
    table = page.locator("#members table").inner_text()
    assert all(name in table for name in ("alice", "bob", "carol"))
    assert _members(db) == {"boss", "alice", "bob", "carol"}
    shots(page, "members-added-several")


def test_an_admin_is_not_offered_to_switch_themselves_off(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/admin/users")
    own = page.locator("tr", has=page.locator("td", has_text="boss"))
    assert own.locator("button", has_text="Switch off").count() == 0
    other = page.locator("tr", has=page.locator("td", has_text="alice"))
    assert other.locator("button", has_text="Switch off").count() == 1
    shots(page, "users-no-self-switch-off")

    # A form sent for oneself anyway (an old tab, say) is answered on the same page, not an error page.
    with db.session(write=False) as s:
        boss_id = s.scalar(select(User.id).where(User.username == "boss"))
    form = other.locator("form[action$='/active']")
    form.evaluate("(f, id) => { f.action = '/admin/users/' + id + '/active'; }", boss_id)
    form.locator("button").click()
    page.locator(".flash.error").wait_for()
    assert "cannot switch yourself off" in page.locator(".flash.error").inner_text()
    assert page.locator("h1").inner_text() == "Users" and page.locator("tr", has_text="alice").count() == 1
    with db.session(write=False) as s:
        assert s.scalar(select(User.is_active).where(User.username == "boss")) is True
