"""The explorer's JSON API on both backends: filters and keyset pages, the item list's compatible filters, bulk
actions, admin-only access, and the export leaving excluded items out."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.db import Database
from app.models import User
from tests.factories import make_item, make_judgment, make_project, make_user

PREF = "preference"


def _setup(db: Database) -> dict[str, Any]:
    with db.session() as s:
        admin = make_user(s, "api-admin", role="admin")
        anns = [make_user(s, f"api-ann{i}") for i in range(2)]
        project = make_project(s, "apix", k=2, members=anns)
        items = [make_item(s, project, f"ocean question {i}") for i in range(7)]
        otter = make_item(s, project, "Sea otters hold hands", candidates=["They do.", "Only when sleeping."])
        for a in anns:
            make_judgment(s, otter, a, {"overall": (PREF, 0, 1)})
        s.commit()
        return {"admin": admin, "ann": anns[0], "otter": otter.id, "items": [i.id for i in items]}


def test_search_filters_and_keyset_pages(client: TestClient, db: Database, login_as: Any) -> None:
    world = _setup(db)
    login_as(world["admin"])
    r = client.get("/api/v1/projects/apix/explorer", params={"q": "otters"})
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == [world["otter"]]
    assert r.json()["items"][0]["margin"] == 1.0 and r.json()["items"][0]["candidate_count"] == 2
    seen: list[int] = []
    after = None
    while True:
        params = {"sort": "newest", "limit": 3, **({"after": after} if after else {})}
        page = client.get("/api/v1/projects/apix/explorer", params=params).json()
        seen += [i["id"] for i in page["items"]]
        after = page["next"]
        if not after:
            break
    assert seen == sorted([*world["items"], world["otter"]], reverse=True)
    # The item list takes the same filters; after_id still pages it; the next cursor is in a header.
    r = client.get("/api/v1/projects/apix/items", params={"q": "ocean", "limit": 5})
    assert [i["id"] for i in r.json()] == world["items"][:5] and r.headers["X-Next-After"] == str(world["items"][4])
    r = client.get("/api/v1/projects/apix/items", params={"after_id": world["items"][4]})
    assert [i["id"] for i in r.json()] == [*world["items"][5:], world["otter"]]
    for bad in ({"sort": "random"}, {"match": "regex"}, {"after": "x"}, {"margin_max": 2}, {"after": "9" * 30}):
        assert client.get("/api/v1/projects/apix/explorer", params=bad).status_code == 422, bad
    assert "/api/v1/projects/{project}/explorer" in client.get("/openapi.json").json()["paths"]


def test_bulk_exclusion_leaves_the_export(client: TestClient, db: Database, login_as: Any) -> None:
    world = _setup(db)
    login_as(world["admin"])

    def exported() -> str:
        r = client.get("/api/v1/projects/apix/export.jsonl")
        assert r.status_code == 200, r.text
        return r.text

    assert "Sea otters hold hands" in exported()
    r = client.post("/api/v1/projects/apix/explorer/bulk", json={"action": "exclude", "item_ids": [world["otter"]]})
    assert r.status_code == 200 and r.json()["changed"] == 1
    assert "Sea otters hold hands" not in exported()
    excluded = client.get("/api/v1/projects/apix/explorer", params={"excluded": "true"}).json()["items"]
    assert [i["id"] for i in excluded] == [world["otter"]]
    client.post("/api/v1/projects/apix/explorer/bulk", json={"action": "include", "item_ids": [world["otter"]]})
    assert "Sea otters hold hands" in exported()
    r = client.post("/api/v1/projects/apix/explorer/bulk", json={"action": "gold", "item_ids": [world["otter"]]})
    assert r.json() == {"action": "gold", "changed": 1, "skipped": [], "job_id": None}
    assert client.post("/api/v1/projects/apix/explorer/bulk", json={"action": "x", "item_ids": [1]}).status_code == 422
    r = client.post("/api/v1/projects/apix/explorer/bulk", json={"action": "exclude", "item_ids": [999999]})
    assert r.status_code == 422


def test_annotators_may_not_explore(client: TestClient, db: Database, login_as: Any) -> None:
    world = _setup(db)
    ann: User = world["ann"]
    login_as(ann)
    assert client.get("/api/v1/projects/apix/explorer").status_code == 403
    bulk = {"action": "exclude", "item_ids": [world["otter"]]}
    assert client.post("/api/v1/projects/apix/explorer/bulk", json=bulk).status_code == 403
    assert client.get("/projects/apix/items").status_code == 403
