"""Project forms: create, edit, validation, gold settings."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import Project, User
from tests.factories import make_item, make_user


def test_create_and_edit_with_gold_settings(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    form = {
        "name": "Helpfulness 2026",
        "slug": "",
        "k": "3",
        "overlap": "2",
        "lease_minutes": "20",
        "gold_share": "10",
        "gold_min_accuracy": "80",
        "dimension-0-key": "helpful",
        "dimension-0-label": "Helpful",
        "dimension-0-description": "useful answers",
        "dimension-1-key": "safe",
        "dimension-1-label": "Safe",
        "dimension-1-description": "no harm",
        "guidelines": "# Read me",
    }
    r = client.post("/projects/new", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/projects/helpfulness-2026"
    with db.session(write=False) as s:
        project = s.scalar(select(Project))
        assert project is not None
        assert (project.k, project.overlap, project.gold_share, project.gold_min_accuracy) == (3, 2, 0.1, 0.8)
        assert [d["key"] for d in project.dimensions] == ["helpful", "safe"]
    page = client.get("/projects/helpfulness-2026/edit")
    assert 'value="10"' in page.text and 'value="80"' in page.text
    bad = client.post("/projects/helpfulness-2026/edit", data={**form, "dimension-0-key": "overall"})
    assert bad.status_code == 422 and "overall" in bad.text


def test_k_is_fixed_once_items_have_candidates(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        project = Project(slug="fixed", name="Fixed", k=2, overlap=1, generation={})
        s.add(project)
        s.flush()
        make_item(s, project, "q", candidates=["a", "b"])
    login_as(admin)
    form = {"name": "Fixed", "k": "3", "overlap": "1", "lease_minutes": "30", "dimension-0-key": "helpful"}
    r = client.post("/projects/fixed/edit", data=form)
    assert r.status_code == 409 and "k cannot change" in r.text
