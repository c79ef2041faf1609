"""The page-test scaffolding itself: a signed-in browser reaches a project page."""

from __future__ import annotations

from typing import Any

from app.db import Database
from tests.factories import make_project, make_user


def test_a_signed_in_annotator_sees_their_project(page: Any, signed_in: Any, db: Database) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
        make_project(s, "scaffold", name="Scaffold project", members=[user])
        s.commit()
    base = signed_in(page, "ann")
    page.goto(f"{base}/projects")
    assert "Scaffold project" in page.inner_text("main")
