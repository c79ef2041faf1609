"""Adding several members at once: names as pasted, all or none, every unknown name listed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db import Database
from app.kit.errors import Invalid
from app.models import ProjectMember
from app.projects import service
from tests.factories import make_project, make_user


def test_usernames_are_split_on_lines_commas_and_spaces_each_once() -> None:
    assert service.split_usernames(" alice,bob\n\ncarol ; alice\r\ndave  eve") == [
        "alice",
        "bob",
        "carol",
        "dave",
        "eve",
    ]


def test_unknown_names_add_nobody_and_are_all_listed(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "p")
        make_user(s, "alice")
        with pytest.raises(Invalid) as caught:
            service.add_members(s, project=project, usernames=["alice", "ghost", "nobody"])
        assert "ghost, nobody" in str(caught.value.detail)
        assert s.scalars(select(ProjectMember).where(ProjectMember.project_id == project.id)).all() == []


def test_known_names_are_added_once(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "p")
        alice, bob = make_user(s, "alice"), make_user(s, "bob")
        service.add_members(s, project=project, usernames=["alice"])
        added = service.add_members(s, project=project, usernames=["alice", "bob"])
        assert [u.id for u in added] == [alice.id, bob.id]
        rows = s.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)).all()
        assert sorted(rows) == sorted([alice.id, bob.id])
        with pytest.raises(Invalid):
            service.add_members(s, project=project, usernames=service.split_usernames(" , "))
