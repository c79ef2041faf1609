"""Health of a model's endpoint: a real vLLM server up, a name it does not serve, a server that is down."""

from __future__ import annotations

import socket
from collections.abc import Callable

from fastapi.testclient import TestClient

from app.db import Database
from app.models import RegisteredModel, User
from tests.registry.conftest import Registry, bearer
from tests.support.vllm import MODEL_NAME

API = "/api/v1/projects/dpo/models"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def bound_model(db: Database, reg: Registry, *, base_url: str | None, served_name: str | None) -> int:
    with db.session() as s:
        model = RegisteredModel(project_id=reg.project_id, name="m", base_url=base_url, served_name=served_name)
        s.add(model)
        s.flush()
        return model.id


def test_up_on_a_real_vllm_server(client: TestClient, reg: Registry, db: Database, vllm_base_url: str) -> None:
    mid = bound_model(db, reg, base_url=vllm_base_url, served_name=MODEL_NAME)
    r = client.get(f"{API}/{mid}/health", headers=bearer(reg.tokens["admin_api"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bound"] is True and body["model_id"] == mid
    (server,) = body["servers"]
    assert server["ok"] is True and MODEL_NAME in server["models"] and server["problem"] is None


def test_a_name_the_server_does_not_serve_is_a_problem(
    client: TestClient, reg: Registry, db: Database, vllm_base_url: str, login_as: Callable[[User], str]
) -> None:
    mid = bound_model(db, reg, base_url=vllm_base_url, served_name="dpo-r9")
    (server,) = client.get(f"{API}/{mid}/health", headers=bearer(reg.tokens["admin_api"])).json()["servers"]
    assert server["ok"] is True and "dpo-r9" in server["problem"]
    login_as(reg.admin)
    fragment = client.get(f"/projects/dpo/models/{mid}/health", headers={"HX-Request": "true"})
    assert f'id="health-{mid}"' in fragment.text
    assert "<html" not in fragment.text and "badge warn" in fragment.text


def test_a_down_server_is_reported_down(
    client: TestClient, reg: Registry, db: Database, login_as: Callable[[User], str]
) -> None:
    mid = bound_model(db, reg, base_url=f"http://127.0.0.1:{closed_port()}", served_name="m")
    (server,) = client.get(f"{API}/{mid}/health", headers=bearer(reg.tokens["admin_api"])).json()["servers"]
    assert server["ok"] is False and server["error"]
    login_as(reg.admin)
    fragment = client.get(f"/projects/dpo/models/{mid}/health", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "badge bad" in fragment.text and "<html" not in fragment.text
    page = client.get(f"/projects/dpo/models/{mid}/health")  # without htmx: the whole page, this model checked
    assert "<html" in page.text and "badge bad" in page.text


def test_unbound_model_is_not_asked(client: TestClient, reg: Registry, db: Database) -> None:
    mid = bound_model(db, reg, base_url=None, served_name=None)
    body = client.get(f"{API}/{mid}/health", headers=bearer(reg.tokens["admin_api"])).json()
    assert body == {"model_id": mid, "bound": False, "servers": []}
