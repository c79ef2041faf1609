"""The settings that decide where human effort goes: adaptive overlap (r_min..r, margin), queue order and
whether annotators see the judge's suggestion, by form and API."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import Project, User
from tests.factories import make_user

FORM = {
    "name": "Effort",
    "slug": "effort",
    "k": "2",
    "overlap": "5",
    "lease_minutes": "30",
    "dimension-0-key": "helpful",
    "overlap_min": "2",
    "adaptive_margin": "40",
    "queue_order": "uncertain_first",
    "suggestions": "after",
}


def _admin(db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)


def test_the_form_sets_shows_and_turns_off_adaptive_overlap(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    _admin(db, login_as)
    assert client.post("/projects/new", data=FORM, follow_redirects=False).status_code == 303
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == "effort"))
        assert project is not None
        assert (project.overlap_min, project.overlap, project.adaptive_margin) == (2, 5, 0.4)
        assert (project.queue_order, project.suggestions) == ("uncertain_first", "after")
    page = client.get("/projects/effort/edit").text
    assert 'name="overlap_min" min="0" max="50" value="2"' in page and 'name="adaptive_margin"' in page
    assert '<option value="uncertain_first" selected>' in page and '<option value="after" selected>' in page
    off = {**FORM, "overlap_min": "", "queue_order": "fullest_first", "suggestions": "shown"}
    assert client.post("/projects/effort/edit", data=off, follow_redirects=False).status_code == 303
    body = client.get("/api/v1/projects/effort").json()
    assert (body["overlap_min"], body["queue_order"], body["suggestions"]) == (None, "fullest_first", "shown")


def test_r_min_above_r_is_refused_by_form_and_api(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    _admin(db, login_as)
    too_many = client.post("/projects/new", data={**FORM, "overlap_min": "6"})
    assert too_many.status_code == 422 and "r_min" in too_many.text
    assert client.post("/api/v1/projects", json={"name": "x", "overlap": 3, "overlap_min": 4}).status_code == 422
    assert client.post("/api/v1/projects", json={"name": "x", "suggestions": "always"}).status_code == 422
    assert client.post("/api/v1/projects", json={"name": "x", "queue_order": "random"}).status_code == 422
    with db.session(write=False) as s:
        assert s.scalar(select(Project.id)) is None
    created = client.post("/api/v1/projects", json={"name": "Pairs", "slug": "pairs", "overlap": 4}).json()
    assert (created["overlap_min"], created["adaptive_margin"], created["queue_order"]) == (None, 0.3, "fullest_first")
    assert created["suggestions"] == "hidden"
    patched = client.patch("/api/v1/projects/pairs", json={"overlap_min": 2, "adaptive_margin": 0.3}).json()
    assert (patched["overlap_min"], patched["overlap"], patched["adaptive_margin"]) == (2, 4, 0.3)
    lowered = client.patch("/api/v1/projects/pairs", json={"overlap": 1})
    assert lowered.status_code == 422 and "r_min" in lowered.json()["detail"]
    assert client.get("/api/v1/projects/pairs").json()["overlap"] == 4  # nothing half-applied
    assert client.patch("/api/v1/projects/pairs", json={"overlap_min": 0}).json()["overlap_min"] is None
