"""The explorer's import batch filter on both backends: the query, the JSON API, the page's select and the item
page naming its batch."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from app.db import Database
from app.explorer.query import explore
from app.explorer.schemas import Filters
from app.items.importer import import_items
from app.models import Item, Project
from tests.factories import make_item, make_project, make_user


def _jsonl(*prompts: str) -> bytes:
    return "".join(json.dumps({"prompt": p, "candidates": [f"{p} one", f"{p} two"]}) + "\n" for p in prompts).encode()


def _world(db: Database) -> dict[str, Any]:
    """Project "batches": a batch of three, a batch of two (one a duplicate), an item made by hand; another project
    with a batch of its own."""
    with db.session() as s:
        admin = make_user(s, "batch-admin", role="admin")
        project = make_project(s, "batches", k=2)
        other = make_project(s, "other-batches", k=2)

        def run(p: Project, name: str, body: bytes) -> int:
            result = import_items(s, project=p, stream=io.BytesIO(body), filename=name, created_by=admin)
            assert result.batch_id is not None
            return result.batch_id

        first = run(project, "prompts.jsonl", _jsonl("walrus", "penguin", "otter"))
        second = run(project, "later <b>.jsonl", _jsonl("narwhal", "walrus", "seal"))
        elsewhere = run(other, "other.jsonl", _jsonl("walrus"))
        make_item(s, project, "made by hand")
        s.commit()
        ids = {str(i.prompt): i.id for i in s.scalars(select(Item).where(Item.project_id == project.id))}
        return {"admin": admin, "first": first, "second": second, "elsewhere": elsewhere, "ids": ids}


def _prompts(db: Database, **filters: Any) -> list[str]:
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == "batches"))
        assert project is not None
        page = explore(s, project=project, filters=Filters(**filters), limit=100)
        return [str(r.prompt) for r in page.items]


def test_the_batch_filter_keeps_only_that_imports_items(db: Database) -> None:
    w = _world(db)
    assert _prompts(db, batch=w["first"]) == ["walrus", "penguin", "otter"]
    assert _prompts(db, batch=w["second"]) == ["narwhal", "seal"]  # its walrus was a duplicate, not added
    assert _prompts(db, batch=w["second"], sort="newest") == ["seal", "narwhal"]
    assert _prompts(db, batch=w["first"], q="walrus") == ["walrus"]
    assert _prompts(db, batch=w["elsewhere"]) == []  # another project's batch finds nothing here
    assert len(_prompts(db)) == 6
    with pytest.raises(ValidationError):
        Filters(batch=0)


def test_the_json_api_takes_the_batch_filter(client: TestClient, db: Database, login_as: Any) -> None:
    w = _world(db)
    login_as(w["admin"])
    r = client.get("/api/v1/projects/batches/explorer", params={"batch": w["second"]})
    assert r.status_code == 200, r.text
    rows = r.json()["items"]
    assert [row["prompt"] for row in rows] == ["narwhal", "seal"]
    assert {row["import_batch_id"] for row in rows} == {w["second"]}
    listed = client.get("/api/v1/projects/batches/items", params={"batch": w["first"], "limit": 2})
    assert [i["prompt"] for i in listed.json()] == ["walrus", "penguin"] and listed.headers["X-Next-After"]
    assert client.get("/api/v1/projects/batches/explorer", params={"batch": "x"}).status_code == 422


def _options(html: str) -> list[tuple[str, str, bool]]:
    select_html = re.search(r'<select id="f-batch" name="batch">(.*?)</select>', html, re.S)
    assert select_html, "the explorer has no import batch select"
    found = re.findall(r'<option value="(\d*)"( selected)?>(.*?)</option>', select_html.group(1), re.S)
    return [(value, label, bool(selected)) for value, selected, label in found]


def test_the_page_lists_the_batches_newest_first_and_filters(client: TestClient, db: Database, login_as: Any) -> None:
    w = _world(db)
    login_as(w["admin"])
    page = client.get("/projects/batches/items")
    assert page.status_code == 200
    options = _options(page.text)
    assert [v for v, _, _ in options] == ["", str(w["second"]), str(w["first"])]  # not the other project's
    label = options[2][1]
    assert label.startswith(f"#{w['first']} · prompts.jsonl · 20") and label.endswith("· 3 items")
    assert "later &lt;b&gt;.jsonl" in options[1][1] and options[1][1].endswith("· 2 items")  # escaped
    chosen = client.get("/projects/batches/items", params={"batch": w["first"]})
    assert [v for v, _, selected in _options(chosen.text) if selected] == [str(w["first"])]
    rows = re.findall(r'<tr data-item="(\d+)"', chosen.text)
    assert rows == [str(w["ids"][p]) for p in ("walrus", "penguin", "otter")]
    assert 'id="batch-chosen"' in chosen.text and "<time" in chosen.text
    bad = client.get("/projects/batches/items", params={"batch": "-1"})
    assert bad.status_code == 422 and "batch" in bad.text


def test_the_item_page_names_its_batch(client: TestClient, db: Database, login_as: Any) -> None:
    w = _world(db)
    login_as(w["admin"])
    page = client.get(f"/projects/batches/items/{w['ids']['seal']}")
    assert page.status_code == 200
    found = re.search(r'id="item-batch">(.*?)</span>', page.text, re.S)
    assert found, "the item page does not show its import batch"
    assert f'href="/projects/batches/items?batch={w["second"]}"' in found.group(1)
    assert "later &lt;b&gt;.jsonl" in found.group(1) and "<time" in found.group(1)
    by_hand = client.get(f"/projects/batches/items/{w['ids']['made by hand']}")
    assert 'id="item-batch"' not in by_hand.text
