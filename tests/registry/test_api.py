"""The registry's JSON API: who may read, register, rename, bind and delete; what each answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import RegisteredModel, User
from tests.factories import make_project
from tests.registry.conftest import Registry, bearer

URL = "/api/v1/projects/dpo/models"
SHA = "cd" * 32


def post(client: TestClient, reg: Registry, token: str | None = "export", **body: Any) -> Any:
    headers = bearer(reg.tokens[token]) if token else {}
    return client.post(URL, json={"name": "dpo-r1", "kind": "checkpoint", **body}, headers=headers)


def names(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return list(s.scalars(select(RegisteredModel.name).order_by(RegisteredModel.id)))


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("other", 403), ("annotator_api", 403), ("admin_api", 201), ("export", 201)],
)
def test_register_access(client: TestClient, reg: Registry, db: Database, token: str | None, status: int) -> None:
    r = post(client, reg, token)
    assert r.status_code == status, r.text
    assert "detail" in r.json() or status == 201
    assert names(db) == (["dpo-r1"] if status == 201 else [])


def test_export_token_registers_and_reads_with_lineage(client: TestClient, reg: Registry) -> None:
    headers = bearer(reg.tokens["export"])
    sft = client.post(URL, json={"name": "sft", "kind": "sft", "uri": "/models/sft"}, headers=headers).json()
    body = {"parent_id": sft["id"], "training_run_id": reg.run_id, "weights_sha256": SHA, "metrics": {"loss": 0.5}}
    r = post(client, reg, **body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["parent_name"], made["snapshot_id"], made["snapshot_sha256"]) == (
        "sft",
        reg.snapshot_id,
        reg.snapshot_sha256,
    )
    assert made["weights_sha256"] == SHA and made["project"] == "dpo"
    listed = client.get(URL, headers=headers).json()
    assert [m["name"] for m in listed] == ["sft", "dpo-r1"]
    assert listed[0]["children"] == [made["id"]]
    one = client.get(f"{URL}/{made['id']}", headers=headers)
    assert one.status_code == 200 and one.json()["metrics"] == {"loss": 0.5}


def test_duplicate_name_is_409_and_bad_input_422(client: TestClient, reg: Registry, db: Database) -> None:
    assert post(client, reg).status_code == 201
    r = post(client, reg)
    assert r.status_code == 409 and "already registered" in r.json()["detail"]
    for bad in ({"kind": "lora"}, {"weights_sha256": "xyz"}, {"name": ""}, {"base_url": "ftp://x", "served_name": "m"}):
        r = post(client, reg, "admin_api", **{"name": "other", **bad})
        assert r.status_code == 422, (bad, r.text)
    assert names(db) == ["dpo-r1"]


def test_tokens_of_other_projects_learn_nothing(client: TestClient, reg: Registry, db: Database) -> None:
    mid = post(client, reg).json()["id"]
    other = bearer(reg.tokens["other"])
    assert client.get(URL, headers=other).status_code == 403
    assert client.get(f"{URL}/{mid}", headers=other).status_code == 403
    assert client.get("/api/v1/projects/nope/models", headers=other).status_code == 403
    # An admin asking for a model of another project through this one: 404.
    with db.session() as s:
        theirs = RegisteredModel(project_id=reg.other_project_id, name="theirs")
        s.add(theirs)
        s.flush()
        theirs_id = theirs.id
    admin = bearer(reg.tokens["admin_api"])
    assert client.get(f"{URL}/{theirs_id}", headers=admin).status_code == 404
    assert client.delete(f"{URL}/{theirs_id}", headers=admin).status_code == 404
    assert "theirs" in names(db)


def test_export_token_may_not_bind_patch_or_delete(client: TestClient, reg: Registry, db: Database) -> None:
    r = post(client, reg, base_url="http://127.0.0.1:8000", served_name="dpo-r1")
    assert r.status_code == 403
    mid = post(client, reg).json()["id"]
    export = bearer(reg.tokens["export"])
    assert client.patch(f"{URL}/{mid}", json={"name": "x"}, headers=export).status_code == 401
    assert client.delete(f"{URL}/{mid}", headers=export).status_code == 401
    assert client.get(f"{URL}/{mid}/health", headers=export).status_code == 401
    assert names(db) == ["dpo-r1"]


def test_admin_binds_renames_and_deletes(client: TestClient, reg: Registry, db: Database) -> None:
    admin = bearer(reg.tokens["admin_api"])
    mid = post(client, reg).json()["id"]
    r = client.patch(
        f"{URL}/{mid}", json={"base_url": "HTTP://127.0.0.1:8001/v1/", "served_name": "dpo-r1"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["base_url"], r.json()["served_name"]) == ("http://127.0.0.1:8001", "dpo-r1")
    assert client.patch(f"{URL}/{mid}", json={"base_url": "http://127.0.0.1:8001"}, headers=admin).status_code == 422
    post(client, reg, name="taken")
    assert client.patch(f"{URL}/{mid}", json={"name": "taken"}, headers=admin).status_code == 409
    r = client.patch(f"{URL}/{mid}", json={"name": "dpo-round-1"}, headers=admin)
    assert r.json()["name"] == "dpo-round-1" and r.json()["base_url"] == "http://127.0.0.1:8001"
    digest = "AB" * 32  # the digest taken where the weights are, given afterwards
    r = client.patch(f"{URL}/{mid}", json={"weights_sha256": digest}, headers=admin)
    assert r.json()["weights_sha256"] == digest.lower() and r.json()["name"] == "dpo-round-1"
    assert client.patch(f"{URL}/{mid}", json={"weights_sha256": "xyz"}, headers=admin).status_code == 422
    assert client.delete(f"{URL}/{mid}", headers=admin).status_code == 204
    assert client.get(f"{URL}/{mid}", headers=admin).status_code == 404
    assert names(db) == ["taken"]


def test_delete_listed_in_an_arena_is_409(client: TestClient, reg: Registry, db: Database) -> None:
    mid = post(client, reg).json()["id"]
    with db.session() as s:
        make_project(s, "arena-x", kind="arena", parent_id=reg.project_id, arena={"model_ids": [mid]})
    r = client.delete(f"{URL}/{mid}", headers=bearer(reg.tokens["admin_api"]))
    assert r.status_code == 409 and "arena-x" in r.json()["detail"]
    assert names(db) == ["dpo-r1"]


def test_annotator_by_cookie_is_refused(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    login_as(reg.annotator)
    assert client.get(URL).status_code == 403
    assert client.post(URL, json={"name": "x"}).status_code == 403
    assert client.patch(f"{URL}/1", json={"name": "x"}).status_code == 403
    assert names(db) == []
