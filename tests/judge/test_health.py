"""The judge page's server health, like the generation page's: each judge's server up (and serving its model) or
down with a plain-words reason — against the real vLLM server and a closed port — as a fragment and as JSON."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.judge import service
from app.models import User
from tests.factories import make_project, make_user
from tests.support.vllm import MODEL_NAME, free_port

PAGE = "/projects/jh/judge"
API = "/api/v1/projects/jh/judge/health"


@pytest.fixture
def users(db: Database) -> dict[str, User]:
    with db.session() as s:
        admin, ann = make_user(s, "boss", role="admin"), make_user(s, "worker")
        make_project(s, "jh", k=2, overlap=1, members=[ann])
        s.commit()
        return {"admin": admin, "annotator": ann}


def _judges(db: Database, *judges: tuple[str, str]) -> None:
    with db.session() as s:
        from app.models import Project

        project = s.query(Project).filter_by(slug="jh").one()
        data = {"judges": [{"model": m, "base_url": url} for m, url in judges]}
        service.update_settings(s, project=project, data=data, allow_private=True)


def _token(db: Database, user: User, settings: Settings) -> dict[str, str]:
    with db.session() as s:
        return {"Authorization": f"Bearer {create_api_token(s, user=s.merge(user), scope='api', settings=settings)[1]}"}


def test_a_closed_port_is_down_with_a_reason(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database, settings: Settings
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens there
    _judges(db, ("judge-x", closed))
    found = client.get(API, headers=_token(db, users["admin"], settings))
    assert found.status_code == 200
    [only] = found.json()
    assert only["ok"] is False and only["judge"] == f"judge-x@{closed}" and only["model"] == "judge-x"
    assert only["base_url"] == closed and f"No server answers at {closed}" in only["problem"] and only["error"]
    login_as(users["admin"])
    page = client.get(PAGE).text
    assert f'hx-get="{PAGE}/health"' in page and 'id="judge-health"' in page  # the page asks once it has loaded
    fragment = client.get(PAGE + "/health", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and fragment.headers["Vary"] == "HX-Request"
    assert "badge bad" in fragment.text and f"No server answers at {closed}" in fragment.text
    whole = client.get(PAGE + "/health")  # without htmx: the whole page, with the answer in it
    assert "<html" in whole.text and "badge bad" in whole.text


def test_no_judge_and_who_may_ask(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database, settings: Settings
) -> None:
    assert client.get(API, headers=_token(db, users["admin"], settings)).json() == []
    assert client.get(API, headers=_token(db, users["annotator"], settings)).status_code == 403
    login_as(users["admin"])
    assert "No server configured yet." in client.get(PAGE + "/health", headers={"HX-Request": "true"}).text


def test_annotators_may_not_ask_from_the_page(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str]
) -> None:
    login_as(users["annotator"])
    assert client.get(PAGE + "/health", headers={"HX-Request": "true"}).status_code == 403


def test_the_real_server_is_up_and_a_missing_model_is_named(
    client: TestClient, users: dict[str, User], login_as: Callable[[User], str], db: Database, vllm_base_url: str
) -> None:
    _judges(db, (MODEL_NAME, vllm_base_url), ("not-served", vllm_base_url))
    login_as(users["admin"])
    fragment = client.get(PAGE + "/health", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.text.count("badge good") == 2, fragment.text
    assert "not-served" in fragment.text and "badge bad" not in fragment.text
    with db.session(write=False) as s:
        from app.models import Project

        project = s.query(Project).filter_by(slug="jh").one()
        served, missing = service.health(service.settings_of(project), allow_private=True)
    assert served.ok and MODEL_NAME in served.models and served.problem is None
    assert served.max_model_len == 512 and served.latency_ms is not None
    assert missing.ok and missing.problem and "not-served" in missing.problem
