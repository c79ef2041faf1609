"""Two real snapshots compared: added, removed and flipped pairs, the page, and the errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.jobs.runner import run_one
from app.models import Project, User
from tests.conftest import login
from tests.factories import PASSWORD, make_item, make_judgment

A = {"overall": ("preference", 0, 1)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _snapshot(client: TestClient, db: Database, token: str, slug: str = "exp", **filters: Any) -> int:
    r = client.post(f"/api/v1/projects/{slug}/snapshots", json={"filters": filters}, headers=bearer(token))
    assert r.status_code == 202, r.text
    run_one(db, worker_id="w")
    return int(r.json()["id"])


@pytest.fixture
def two(client: TestClient, db: Database, world: dict[str, Any], tokens: dict[str, str]) -> dict[str, int]:
    """Snapshot 1 with the default filter; snapshot 2 with adjudication off (``decided`` flips), two judgments
    needed (``lonely`` goes), ties kept (``mostly_tie`` comes), and a new item whose prompt is markup."""
    first = _snapshot(client, db, tokens["admin_api"])
    with db.session() as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        item = make_item(s, project, "<script>alert('x')</script>", candidates=["one", "two"], external_id="html")
        for name in ("ann1", "ann2", "ann3"):
            user = s.get(User, world["users"][name])
            assert user is not None
            make_judgment(s, item, user, A)
    second = _snapshot(client, db, tokens["admin_api"], adjudicated=False, min_judgments=2, drop_ties=False)
    return {"from": first, "to": second}


def test_counts_added_removed_flipped_and_unchanged(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], two: dict[str, int]
) -> None:
    r = client.get(
        f"/api/v1/projects/exp/snapshots/diff?from={two['from']}&to={two['to']}", headers=bearer(tokens["export"])
    )
    assert r.status_code == 200, r.text
    diff = r.json()
    assert (diff["from_rows"], diff["to_rows"]) == (5, 6)
    assert diff["counts"] == {"added": 2, "removed": 1, "flipped": 1, "unchanged": 3}
    items = world["items"]
    changed = {(p["change"], p["item_id"]) for p in diff["changed"]}
    assert ("flipped", items["decided"]) in changed and ("removed", items["lonely"]) in changed
    assert ("added", items["mostly_tie"]) in changed
    flipped = next(p for p in diff["changed"] if p["change"] == "flipped")
    assert flipped["prompt"] == "prompt decided" and flipped["dimension"] == "overall"
    assert diff["by_reason"]["removed"] == {"adjudicated=no": 1, "item=gone": 1, "margin=1": 1}
    assert diff["by_reason"]["flipped"]["adjudicated=no"] == 1 and diff["by_reason"]["flipped"]["item=both"] == 1
    assert diff["by_reason"]["added"]["item=new"] == 2  # neither item had a pair in the older file
    assert diff["filters_changed"]["adjudicated"] == [True, False]
    assert diff["filters_changed"]["min_judgments"] == [1, 2]
    assert diff["truncated"] is False
    # Backwards: what was added is removed, and a flip is still a flip.
    back = client.get(
        f"/api/v1/projects/exp/snapshots/diff?from={two['to']}&to={two['from']}", headers=bearer(tokens["export"])
    )
    assert back.json()["counts"] == {"added": 1, "removed": 2, "flipped": 1, "unchanged": 3}
    limited = client.get(
        f"/api/v1/projects/exp/snapshots/diff?from={two['from']}&to={two['to']}&limit=1",
        headers=bearer(tokens["export"]),
    ).json()
    assert len(limited["changed"]) == 1 and limited["truncated"] is True


def test_the_page_lists_changed_pairs_escaped_and_the_export_page_links_it(
    client: TestClient, two: dict[str, int]
) -> None:
    login(client, "chief", PASSWORD)
    page = client.get(f"/projects/exp/snapshots/diff?from={two['from']}&to={two['to']}")
    assert page.status_code == 200, page.text
    assert 'data-change="flipped"' in page.text and 'data-change="removed"' in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    assert "prompt lonely" in page.text
    export = client.get("/projects/exp/export")
    assert f"/projects/exp/snapshots/diff?from={two['from']}&amp;to={two['to']}" in export.text
    assert "compare with previous" in export.text


def test_unknown_other_project_and_pending_snapshots_are_refused(
    client: TestClient, db: Database, tokens: dict[str, str], two: dict[str, int]
) -> None:
    admin = bearer(tokens["admin_api"])
    url = "/api/v1/projects/exp/snapshots/diff"
    missing = client.get(f"{url}?from={two['from']}&to=999999", headers=admin)
    assert missing.status_code == 404 and missing.json()["detail"] == "No such snapshot"
    elsewhere = _snapshot(client, db, tokens["admin_api"], slug="other-exp")
    assert client.get(f"{url}?from={elsewhere}&to={two['to']}", headers=admin).status_code == 404
    pending = client.post("/api/v1/projects/exp/snapshots", json={}, headers=admin).json()["id"]
    r = client.get(f"{url}?from={two['from']}&to={pending}", headers=admin)
    assert r.status_code == 422 and "is pending" in r.json()["detail"]
    same = client.get(f"{url}?from={two['from']}&to={two['from']}", headers=admin)
    assert same.status_code == 422 and "two different snapshots" in same.json()["detail"]
    assert client.get(f"{url}?from={two['from']}", headers=admin).status_code == 422
    assert client.get(f"{url}?from=x&to=1", headers=admin).status_code == 422
    assert client.get(f"{url}?from={two['from']}&to={two['to']}", headers=bearer(tokens["other"])).status_code == 403
    assert client.get(f"{url}?from={two['from']}&to={two['to']}").status_code == 401
    login(client, "chief", PASSWORD)
    page = client.get(f"/projects/exp/snapshots/diff?from={two['from']}&to=999999")
    assert page.status_code == 404
