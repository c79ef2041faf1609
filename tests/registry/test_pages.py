"""The registry page: lineage and columns, the add / bind / delete forms, CSRF and who may open it."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import Project, RegisteredModel, User
from app.registry import service
from tests.conftest import csrf_from
from tests.registry.conftest import Registry

PAGE = "/projects/dpo/models"
SHA = "ef" * 32


def seed_chain(db: Database, reg: Registry) -> None:
    with db.session() as s:
        project = s.get(Project, reg.project_id)
        assert project is not None
        service.register_checkpoint(
            s,
            project,
            name="dpo-r1",
            uri="/out/dpo-r1",
            weights_sha256=SHA,
            training_run=reg.run_id,
            params={},
            metrics={"rewards/accuracies": 0.8125, "loss": 0.4},
            parent_uri="/models/sft",
        )


def models(db: Database) -> dict[str, RegisteredModel]:
    with db.session(write=False) as s:
        found = {m.name: m for m in s.scalars(select(RegisteredModel))}
        s.expunge_all()
    return found


def test_page_shows_lineage_and_columns(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    seed_chain(db, reg)
    login_as(reg.admin)
    r = client.get(PAGE)
    assert r.status_code == 200
    rows = re.findall(r'<tr id="model-(\d+)">(.*?)</tr>', r.text, re.S)
    assert len(rows) == 2
    sft_row, ckpt_row = rows[0][1], rows[1][1]
    assert "<strong>sft</strong>" in sft_row and 'data-depth="0"' in sft_row
    assert "<strong>dpo-r1</strong>" in ckpt_row and 'data-depth="1"' in ckpt_row
    assert "sft →" in ckpt_row
    assert f"#{reg.snapshot_id}" in ckpt_row and reg.snapshot_sha256[:12] in ckpt_row
    assert f"#run-{reg.run_id}" in ckpt_row
    assert "0.81" in ckpt_row and SHA[:12] in ckpt_row
    assert "not served" in ckpt_row
    project_page = client.get("/projects/dpo")
    assert 'href="/projects/dpo/models"' in project_page.text


def test_add_bind_and_delete_by_form(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    login_as(reg.admin)
    csrf = csrf_from(client.get(PAGE).text)
    r = client.post(
        PAGE,
        data={
            "csrf_token": csrf,
            "name": "hand",
            "kind": "sft",
            "uri": "org/model",
            "snapshot_id": str(reg.snapshot_id),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    hand = models(db)["hand"]
    assert (hand.kind, hand.uri, hand.snapshot_sha256, hand.weights_sha256) == (
        "sft",
        "org/model",
        reg.snapshot_sha256,
        None,
    )
    bind = {"csrf_token": csrf, "name": "hand", "base_url": "http://127.0.0.1:9/v1", "served_name": "hand"}
    r = client.post(f"{PAGE}/{hand.id}/bind", data=bind, headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["HX-Redirect"] == PAGE
    assert models(db)["hand"].base_url == "http://127.0.0.1:9"
    page = client.get(PAGE).text
    assert f'hx-get="/projects/dpo/models/{hand.id}/health"' in page
    r = client.post(f"{PAGE}/{hand.id}/bind", data={"csrf_token": csrf, "name": "hand"}, follow_redirects=False)
    assert r.status_code == 303 and models(db)["hand"].base_url is None
    r = client.post(f"{PAGE}/{hand.id}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert models(db) == {}


def test_form_errors_store_nothing(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    login_as(reg.admin)
    csrf = csrf_from(client.get(PAGE).text)
    for bad in (
        {"name": "x", "base_url": "http://127.0.0.1:8000"},  # no served name
        {"name": "x", "parent_id": "abc"},
        {"name": "x", "kind": "lora"},
        {"name": ""},
    ):
        r = client.post(PAGE, data={"csrf_token": csrf, **bad}, follow_redirects=False)
        assert r.status_code == 422, (bad, r.status_code)
    assert models(db) == {}


def test_forms_need_the_csrf_token(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    seed_chain(db, reg)
    login_as(reg.admin)
    del client.headers["X-CSRF-Token"]
    mid = models(db)["dpo-r1"].id
    assert client.post(PAGE, data={"name": "x"}).status_code == 403
    assert client.post(f"{PAGE}/{mid}/delete", data={}).status_code == 403
    assert client.post(f"{PAGE}/{mid}/bind", data={"name": "y"}).status_code == 403
    assert client.post(f"{PAGE}/{mid}/delete", data={"csrf_token": "wrong"}).status_code == 403
    assert set(models(db)) == {"sft", "dpo-r1"}


def test_annotators_cannot_open_or_post(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    seed_chain(db, reg)
    csrf = login_as(reg.annotator)
    assert client.get(PAGE).status_code == 403
    mid = models(db)["dpo-r1"].id
    assert client.post(f"{PAGE}/{mid}/delete", data={"csrf_token": csrf}).status_code == 403
    assert client.get(f"{PAGE}/{mid}/health").status_code == 403
    assert "dpo-r1" in models(db)
    assert 'href="/projects/dpo/models"' not in client.get("/projects/dpo").text


def test_model_names_are_escaped(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    login_as(reg.admin)
    csrf = csrf_from(client.get(PAGE).text)
    client.post(PAGE, data={"csrf_token": csrf, "name": "<script>alert(1)</script>"})
    page = client.get(PAGE).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
