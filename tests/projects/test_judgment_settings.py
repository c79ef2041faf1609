"""The judgment-shape settings: ranking mode (k ≥ 3), strength (k = 2) and Cohen's κ minimum, by form and API."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import Project, User
from tests.factories import make_user

FORM = {
    "name": "Ranked",
    "slug": "ranked",
    "k": "4",
    "overlap": "3",
    "lease_minutes": "30",
    "dimension-0-key": "helpful",
    "ranking_mode": "rank",
    "strength": "0",
    "cohen_min_items": "35",
}


def _admin(db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)


def test_the_form_sets_and_shows_ranking_mode_strength_and_cohen_minimum(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    _admin(db, login_as)
    assert client.post("/projects/new", data=FORM, follow_redirects=False).status_code == 303
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == "ranked"))
        assert project is not None
        assert (project.ranking_mode, project.strength, project.cohen_min_items) == ("rank", False, 35)
    page = client.get("/projects/ranked/edit").text
    assert '<option value="rank" selected>' in page and 'name="cohen_min_items" min="2" value="35"' in page
    assert "stay valid as they were given" in page
    edited = {**FORM, "k": "2", "ranking_mode": "best_worst", "strength": "1", "cohen_min_items": "2"}
    assert client.post("/projects/ranked/edit", data=edited, follow_redirects=False).status_code == 303
    body = client.get("/api/v1/projects/ranked").json()
    assert (body["ranking_mode"], body["strength"], body["cohen_min_items"]) == ("best_worst", True, 2)
    assert '<option value="1" selected>' in client.get("/projects/ranked/edit").text


def test_a_form_without_the_new_fields_keeps_the_settings(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    _admin(db, login_as)
    assert client.post("/projects/new", data={**FORM, "strength": "1"}, follow_redirects=False).status_code == 303
    old_form = {k: v for k, v in FORM.items() if k not in ("ranking_mode", "strength", "cohen_min_items")}
    assert client.post("/projects/ranked/edit", data=old_form, follow_redirects=False).status_code == 303
    body = client.get("/api/v1/projects/ranked").json()
    assert (body["ranking_mode"], body["strength"], body["cohen_min_items"]) == ("rank", True, 35)


def test_bad_settings_are_refused_by_form_and_api(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    _admin(db, login_as)
    bad_mode = client.post("/projects/new", data={**FORM, "ranking_mode": "pairs"})
    assert bad_mode.status_code == 422 and "ranking_mode" in bad_mode.text
    too_few = client.post("/projects/new", data={**FORM, "cohen_min_items": "1"})
    assert too_few.status_code == 422 and "cohen_min_items" in too_few.text
    assert client.post("/api/v1/projects", json={"name": "x", "cohen_min_items": 1}).status_code == 422
    assert client.post("/api/v1/projects", json={"name": "x", "ranking_mode": "full"}).status_code == 422
    with db.session(write=False) as s:
        assert s.scalar(select(Project.id)) is None


def test_the_api_creates_and_patches_the_settings(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    _admin(db, login_as)
    created = client.post("/api/v1/projects", json={"name": "Pairs", "slug": "pairs"}).json()
    assert (created["ranking_mode"], created["strength"], created["cohen_min_items"]) == ("best_worst", False, 20)
    patched = client.patch("/api/v1/projects/pairs", json={"strength": True, "ranking_mode": "rank"}).json()
    assert (patched["ranking_mode"], patched["strength"], patched["cohen_min_items"]) == ("rank", True, 20)
    patched = client.patch("/api/v1/projects/pairs", json={"cohen_min_items": 50}).json()
    assert (patched["ranking_mode"], patched["strength"], patched["cohen_min_items"]) == ("rank", True, 50)
