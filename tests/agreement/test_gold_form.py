"""The item page's gold form: mark with expected answers, unmark, CSRF and admin only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.models import Item, User
from tests.conftest import csrf_from
from tests.factories import make_items, make_project, make_user


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    with db.session() as s:
        admin = make_user(s, "boss", role="admin")
        annotator = make_user(s, "ann")
        project = make_project(s, "gf", k=3, overlap=2, members=[annotator])
        item = make_items(s, project, 2)[0]
        s.expunge_all()
        return {"admin": admin, "annotator": annotator, "item_id": item.id, "url": f"/projects/gf/items/{item.id}"}


def _item(db: Database, item_id: int) -> Item:
    with db.session(write=False) as s:
        item = s.get(Item, item_id)
        assert item is not None
        s.expunge(item)
        return item


FORM = {
    "gold_overall": "preference:2:0",
    "gold_helpful": "preference:2:1",
    "gold_harmless": "tie",
    "gold_honest": "either",
    "gold_polite": "either",
    "gold_refusal": "either",
}


def test_mark_and_unmark_from_the_item_page(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    token = login_as(world["admin"])
    page = client.get(world["url"])
    assert page.status_code == 200 and 'name="gold_overall"' in page.text and "Mark as gold" in page.text
    # k = 3: every best/worst pair is offered, by canonical candidate number.
    assert page.text.count('value="preference:') == 6 * 6 and "best: candidate 3, worst: candidate 1" in page.text

    r = client.post(world["url"] + "/gold", data={**FORM, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == world["url"]
    item = _item(db, world["item_id"])
    assert item.is_gold and item.gold == {
        "overall": {"kind": "preference", "chosen": 2, "rejected": 0},
        "helpful": {"kind": "preference", "chosen": 2, "rejected": 1},
        "harmless": {"kind": "tie"},
        "honest": {"kind": "either"},
        "polite": {"kind": "either"},
        "refusal": {"kind": "either"},
    }
    page = client.get(world["url"])
    assert 'value="preference:2:0" selected' in page.text and 'value="tie" selected' in page.text
    assert "Unmark" in page.text

    r = client.post(world["url"] + "/gold/remove", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    item = _item(db, world["item_id"])
    assert not item.is_gold and item.gold is None
    assert "Unmark" not in client.get(world["url"]).text


def test_htmx_post_redirects_with_a_header(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    login_as(world["admin"])
    r = client.post(world["url"] + "/gold", data=FORM, headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 200 and r.headers["HX-Redirect"] == world["url"]
    assert _item(db, world["item_id"]).is_gold


def test_without_the_csrf_token_nothing_changes(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    login_as(world["admin"])
    del client.headers["X-CSRF-Token"]
    assert client.post(world["url"] + "/gold", data=FORM, follow_redirects=False).status_code == 403
    assert not _item(db, world["item_id"]).is_gold
    with db.session() as s:
        from app.items.service import set_gold
        from app.models import Project

        project = s.query(Project).filter_by(slug="gf").one()
        set_gold(s, project=project, item_id=world["item_id"], expected={"overall": {"kind": "tie"}})
    assert client.post(world["url"] + "/gold/remove", data={"csrf_token": "forged"}).status_code == 403
    assert _item(db, world["item_id"]).is_gold


def test_annotators_cannot_mark_gold(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    token = login_as(world["annotator"])
    assert client.get(world["url"]).status_code in (403, 404)
    r = client.post(world["url"] + "/gold", data={**FORM, "csrf_token": token}, follow_redirects=False)
    assert r.status_code in (403, 404)
    assert client.post(world["url"] + "/gold/remove", data={"csrf_token": token}).status_code in (403, 404)
    assert not _item(db, world["item_id"]).is_gold


@pytest.mark.parametrize(
    "change",
    [
        {"gold_overall": ""},  # overall must be answered
        {"gold_helpful": "preference:1:1"},  # not an offered answer
        {"gold_helpful": "preference:0:3"},  # k = 3: no candidate 4
        {"gold_polite": "maybe"},
    ],
)
def test_bad_answers_are_refused(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str], change: dict[str, str]
) -> None:
    login_as(world["admin"])
    r = client.post(world["url"] + "/gold", data={**FORM, **change}, follow_redirects=False)
    assert r.status_code == 422
    assert not _item(db, world["item_id"]).is_gold


def test_another_projects_item_is_404(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        other = make_project(s, "other", k=3)
        foreign = make_items(s, other, 1)[0].id
    token = login_as(world["admin"])
    r = client.post(f"/projects/gf/items/{foreign}/gold", data={**FORM, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404 and not _item(db, foreign).is_gold
    assert csrf_from(client.get(world["url"]).text) == token
