"""Model-server URLs an admin may enter, where the stored API key may go, and odd answers from a server."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.generation.schemas import normalize_base_url
from app.jobs import runner
from app.models import Candidate, Job, Project
from tests.factories import make_item, make_project, make_user
from tests.support.fake_openai import FakeOpenAI

API = "/api/v1/projects/g/generation"


@pytest.fixture
def admin(db: Database, settings: Settings) -> dict[str, str]:
    with db.session() as s:
        boss = make_user(s, "boss", role="admin")
        project = make_project(s, "g", k=2, overlap=1)
        for i in range(2):
            make_item(s, project, f"p{i}", candidates=[])
        token = create_api_token(s, user=boss, scope="api", settings=settings)[1]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def private_refused(settings: Settings) -> Settings:
    settings.allow_private_model_servers = False  # the app and its worker share this object
    return settings


@pytest.fixture
def fake_b() -> Any:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def _put(client: TestClient, admin: dict[str, str], **body: Any) -> Any:
    return client.put(API + "/settings", json={"model": "fake", **body}, headers=admin)


def _stored(db: Database) -> dict[str, Any]:
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == "g"))
        assert project is not None
        return dict(project.generation)


def _store(db: Database, generation: dict[str, Any]) -> None:
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == "g"))
        assert project is not None
        project.generation = generation


# --- the URL itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTP://VLLM:8000/v1/", "http://vllm:8000"),
        ("https://models.example.com/vllm/v1", "https://models.example.com/vllm"),
        ("http://0x7f000001:8000", "http://127.0.0.1:8000"),
        ("http://2130706433", "http://127.0.0.1"),
        ("http://127.1:8000/", "http://127.0.0.1:8000"),
        ("http://0177.0.0.01", "http://127.0.0.1"),
        ("http://0x7f.1", "http://127.0.0.1"),
        ("http://[::FFFF:7f00:1]:8000", "http://[::ffff:7f00:1]:8000"),
        ("http://vllm.:8000", "http://vllm:8000"),
    ],
)
def test_base_urls_are_normalised(url: str, normal: str) -> None:
    assert normalize_base_url(url) == normal


@pytest.mark.parametrize(
    "url",
    [
        "ftp://vllm:8000",
        "vllm:8000",
        "http://user:pass@vllm:8000",
        "http://user@vllm:8000",
        "http://vllm:8000?",
        "http://vllm:8000/v1?x=/../admin",
        "http://vllm:8000#frag",
        "http://vllm:8000/#",
        "http://vllm:99999",
        "http://vllm:port",
        "http://",
        "http:///v1",
        "http://vll m:8000",
        "http://vllm\n:8000",
        "http://vllm:8000/a/../../admin",
        "http://vllm:8000/a\\b",
        "http://[fe80::1%25eth0]:8000",
        "http://bücher.example",
        "http://" + "a" * 600,
    ],
)
def test_malformed_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        normalize_base_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://0x7f000001:8000",
        "http://2130706433:8000",
        "http://127.1:8000",
        "http://017700000001",
        "http://localhost:8000",
        "http://api.localhost",
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]:8000",
        "http://10.1.2.3",
        "http://192.168.0.7:8000",
        "http://172.16.5.4",
        "http://100.64.0.1",
        "http://[fd00::1]",
    ],
)
def test_private_servers_are_refused_unless_allowed(
    client: TestClient, admin: dict[str, str], private_refused: Settings, db: Database, url: str
) -> None:
    r = _put(client, admin, base_urls=[url])
    assert r.status_code == 422, r.text
    assert "PREFSTUDIO_ALLOW_PRIVATE_MODEL_SERVERS" in str(r.json()["detail"])
    r = _put(client, admin, strategy="per_model", models=[{"model": "a", "base_url": url}])
    assert r.status_code == 422, r.text
    assert _stored(db) == {}
    private_refused.allow_private_model_servers = True
    assert _put(client, admin, base_urls=[url]).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254",
        "http://0xa9fea9fe",
        "http://2852039166",
        "http://[fe80::1]",
        "http://[::ffff:169.254.169.254]",
        "http://[fd00:ec2::254]",
        "http://100.100.100.200",
        "http://metadata.google.internal",
        "http://0.0.0.0:8000",
        "http://0:8000",
        "http://224.0.0.1",
        "http://255.255.255.255",
    ],
)
def test_link_local_and_metadata_addresses_are_always_refused(
    client: TestClient, admin: dict[str, str], settings: Settings, url: str
) -> None:
    assert settings.allow_private_model_servers
    r = _put(client, admin, base_urls=[url])
    assert r.status_code == 422, r.text


def test_private_servers_are_allowed_outside_production(database_url: str) -> None:
    from tests.conftest import make_settings

    assert make_settings(database_url).allow_private_model_servers is True
    assert make_settings(database_url, environment="production").allow_private_model_servers is False
    assert make_settings(
        database_url, environment="production", allow_private_model_servers=True
    ).allow_private_model_servers


@pytest.fixture
def resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``model.test`` resolves to 127.0.0.1, as a DNS name an attacker controls could at any moment."""
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host in ("model.test", b"model.test") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


def test_a_name_resolving_to_a_private_address_is_refused_when_connecting(
    client: TestClient,
    admin: dict[str, str],
    private_refused: Settings,
    fake: FakeOpenAI,
    db: Database,
    resolve_to_loopback: None,
) -> None:
    # Names are not resolved when saved (the answer may change by the time of the request) ...
    assert _put(client, admin, base_urls=[f"http://model.test:{fake.port}"]).status_code == 200
    # ... but every connection checks the addresses it is about to use.
    health = client.get(API + "/health", headers=admin).json()
    assert health[0]["ok"] is False and "private" in health[0]["error"]
    refused = client.post(API + "/jobs", json={"selection": "missing"}, headers=admin)
    assert refused.status_code == 409 and "private" in refused.json()["detail"]  # no server answers: not started
    job = client.post(API + "/jobs", json={"selection": "missing", "force": True}, headers=admin).json()
    runner.run_one(db, worker_id="w")
    with db.session(write=False) as s:
        failed = s.get(Job, job["id"])
        assert failed is not None and "private" in (failed.error or "")
        assert failed.result["failed_items"] == 2 and failed.result["candidates"] == 0
        assert failed.result["retries"] == 0  # a refusal is final, not retried
    assert fake.seen == []


def test_a_checked_name_connects_to_the_address_it_was_checked_with(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, resolve_to_loopback: None
) -> None:
    assert _put(client, admin, base_urls=[f"http://model.test:{fake.port}"]).status_code == 200
    health = client.get(API + "/health", headers=admin).json()
    assert health[0]["ok"] is True, health
    assert fake.seen[0][2]["host"] == f"model.test:{fake.port}"


# --- the API key ---------------------------------------------------------------------------------------------


def test_the_stored_key_needs_entering_again_for_another_server(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, fake_b: FakeOpenAI, db: Database
) -> None:
    assert _put(client, admin, base_urls=[fake.base_url], api_key="sk-one").status_code == 200
    assert _put(client, admin, base_urls=[fake.base_url], temperature=0.5).status_code == 200  # same server: kept
    moved = _put(client, admin, base_urls=[fake_b.base_url])
    assert moved.status_code == 422 and "API key" in str(moved.json()["detail"])
    added = _put(client, admin, base_urls=[fake.base_url, fake_b.base_url], api_key="••••")
    assert added.status_code == 422
    per_model = _put(
        client, admin, strategy="per_model", models=[{"model": "a"}, {"model": "b", "base_url": fake_b.base_url}]
    )
    assert per_model.status_code == 422
    assert _stored(db)["base_urls"] == [fake.base_url]
    client.get(API + "/health", headers=admin)
    assert fake_b.seen == [] and fake.seen[-1][2]["authorization"] == "Bearer sk-one"

    again = _put(client, admin, base_urls=[fake_b.base_url], api_key="sk-two")
    assert again.status_code == 200 and again.json()["api_key"] == "••••"
    client.get(API + "/health", headers=admin)
    assert fake_b.seen[-1][2]["authorization"] == "Bearer sk-two"
    cleared = _put(client, admin, base_urls=[fake.base_url], api_key=None)
    assert cleared.status_code == 200 and cleared.json()["api_key"] is None
    assert _stored(db)["api_key"] is None


def test_the_key_goes_only_to_the_servers_it_was_saved_for(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, fake_b: FakeOpenAI, db: Database
) -> None:
    # Settings written before keys were tied to servers: the key belongs to the servers stored with it.
    _store(db, {"base_urls": [fake.base_url], "model": "fake", "api_key": "sk-old"})
    assert _put(client, admin, base_urls=[fake_b.base_url]).status_code == 422
    # Whatever is stored, a request to a server the key was not saved for goes without it.
    _store(
        db,
        {
            "base_urls": [fake.base_url, fake_b.base_url],
            "model": "fake",
            "api_key": "sk-old",
            "api_key_origins": [fake.base_url],
        },
    )
    client.get(API + "/health", headers=admin)
    job = client.post(API + "/jobs", json={"selection": "missing"}, headers=admin).json()
    assert runner.run_one(db, worker_id="w") == (job["id"], "done")
    assert fake.seen and all(h.get("authorization") == "Bearer sk-old" for _, _, h in fake.seen)
    assert fake_b.seen and all("authorization" not in h for _, _, h in fake_b.seen)


def test_settings_form_keeps_or_clears_the_key(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, fake_b: FakeOpenAI, db: Database
) -> None:
    form = {"base_urls": fake.base_url, "model": "fake", "temperature": "1", "top_p": "1", "timeout_s": "60"}
    form |= {"max_tokens": "16", "seed": "1", "concurrency": "4", "max_retries": "1", "temperatures": "0.5, 1"}
    saved = client.post("/projects/g/generation/settings", data={**form, "api_key": "sk-1"}, headers=admin)
    assert saved.status_code == 200, saved.text
    assert _stored(db)["api_key"] == "sk-1"
    client.post("/projects/g/generation/settings", data=form, headers=admin)
    assert _stored(db)["api_key"] == "sk-1"
    moved = client.post("/projects/g/generation/settings", data={**form, "base_urls": fake_b.base_url}, headers=admin)
    assert moved.status_code == 422 and "API key" in moved.text
    page = client.get("/projects/g/generation", headers=admin).text
    assert 'name="clear_api_key"' in page and f"Sent only to {fake.base_url}" in page and "sk-1" not in page
    cleared = {**form, "base_urls": fake_b.base_url, "clear_api_key": "1"}
    assert client.post("/projects/g/generation/settings", data=cleared, headers=admin).status_code < 400
    assert _stored(db)["api_key"] is None and _stored(db)["base_urls"] == [fake_b.base_url]


# --- what a server answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "models",
    [
        [{"id": "fake"}],
        {"data": "fake"},
        {"data": {"id": "fake"}},
        {"data": [1, "fake", None]},
        {"data": [{"id": 5}, {"id": "ok", "max_model_len": "big"}]},
        {"data": [{"id": "ok", "max_model_len": 2**70}]},
        "not an object",
    ],
)
def test_health_survives_any_models_answer(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, models: Any
) -> None:
    fake.models = models
    assert _put(client, admin, base_urls=[fake.base_url]).status_code == 200
    r = client.get(API + "/health", headers=admin)
    assert r.status_code == 200, r.text
    assert all(isinstance(m, str) for m in r.json()[0]["models"])
    page = client.get("/projects/g/generation/health", headers={**admin, "HX-Request": "true"})
    assert page.status_code == 200


def test_health_echoes_model_ids_bounded_and_escaped(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI
) -> None:
    fake.models = {"data": [{"id": "<img src=x onerror=alert(1)>"}, {"id": "m" * 5000}, *({"id": "x"},) * 500]}
    assert _put(client, admin, base_urls=[fake.base_url]).status_code == 200
    found = client.get(API + "/health", headers=admin).json()[0]
    assert found["ok"] and len(found["models"]) <= 50 and all(len(m) <= 200 for m in found["models"])
    page = client.get("/projects/g/generation/health", headers={**admin, "HX-Request": "true"}).text
    assert "<img src=x" not in page and "&lt;img src=x" in page


def _run_job(client: TestClient, admin: dict[str, str], db: Database) -> Job:
    job = client.post(API + "/jobs", json={"selection": "missing"}, headers=admin).json()
    runner.run_one(db, worker_id="w")
    with db.session(write=False) as s:
        found = s.get(Job, job["id"])
        assert found is not None
        return found


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": 2**63, "completion_tokens": -1}, "x", [1], {"prompt_tokens": "12", "completion_tokens": 1.5}],
)
def test_token_counts_beyond_the_column_are_stored_as_unknown(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, db: Database, usage: Any
) -> None:
    def huge(payload: dict[str, Any]) -> dict[str, Any]:
        payload["usage"] = usage
        payload["model"] = "m" * 300
        payload["choices"][0]["finish_reason"] = "x" * 100
        payload["choices"][1]["logprobs"] = {"content": "not a list"}
        return payload

    fake.rewrite = huge
    assert _put(client, admin, base_urls=[fake.base_url]).status_code == 200
    job = _run_job(client, admin, db)
    assert job.state == "done" and job.error is None, job.error
    with db.session(write=False) as s:
        candidates = s.scalars(select(Candidate)).all()
    assert len(candidates) == 4
    assert {c.prompt_tokens for c in candidates} == {None}
    assert all(c.model is not None and len(c.model) <= 200 for c in candidates)
    assert all(c.finish_reason is None or len(c.finish_reason) <= 32 for c in candidates)


def test_seeds_stay_within_the_column(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, db: Database
) -> None:
    assert _put(client, admin, base_urls=[fake.base_url], seed=2**31 - 1).status_code == 200
    job = _run_job(client, admin, db)
    assert job.state == "done", job.error
    with db.session(write=False) as s:
        seeds = set(s.scalars(select(Candidate.seed)))
    assert seeds and all(seed is not None and 0 <= seed < 2**31 for seed in seeds)


@pytest.mark.parametrize(
    "answer",
    [
        [1, 2],
        {"choices": "x"},
        {"choices": [{"index": 0, "message": "x"}, {"index": 1, "message": {"content": 5}}]},
        {"choices": [{"index": "a", "message": {"content": "x"}}] * 2},
        {"choices": [{"index": 0, "message": {"content": "x"}}, None]},
        {"choices": [{"index": 0, "message": {"content": "x"}}, {"index": 1}]},
    ],
)
def test_malformed_completions_fail_the_item_clearly(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, db: Database, answer: Any
) -> None:
    fake.rewrite = lambda _payload: answer
    assert _put(client, admin, base_urls=[fake.base_url], max_retries=0).status_code == 200
    job = _run_job(client, admin, db)
    assert job.state in ("done", "failed") and "unexpected answer" in (job.error or ""), job.error
    assert job.result["failed_items"] == 2


def test_item_ids_beyond_the_row_range_are_refused(client: TestClient, admin: dict[str, str], fake: FakeOpenAI) -> None:
    assert _put(client, admin, base_urls=[fake.base_url]).status_code == 200
    for ids in ([2**63], [2**31], [-1]):
        r = client.post(API + "/jobs", json={"selection": "ids", "item_ids": ids}, headers=admin)
        assert r.status_code == 422, r.text
    form = client.post("/projects/g/generation/start", data={"selection": "ids", "item_ids": str(2**63)}, headers=admin)
    assert form.status_code == 422


def test_settings_stored_before_the_checks_can_be_replaced(
    client: TestClient, admin: dict[str, str], fake: FakeOpenAI, db: Database
) -> None:
    _store(db, {"base_urls": ["http://user:pw@vllm:8000/?x=1"], "model": "m", "api_key": "sk-old"})
    page = client.get("/projects/g/generation", headers=admin)
    assert page.status_code == 200 and "save the settings again" in page.text and "user:pw" not in page.text
    assert client.post(API + "/jobs", json={"selection": "missing"}, headers=admin).status_code == 422
    assert client.get(API + "/health", headers=admin).status_code == 422
    saved = _put(client, admin, base_urls=[fake.base_url])
    assert saved.status_code == 200 and saved.json()["api_key"] is None  # the old key is not carried over
