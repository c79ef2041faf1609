"""The webhooks page and API: create (the secret shown once), change, rotate, test, delete; CSRF on every form;
admins only; URLs refused on save when they point where webhooks must not go."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.models import User, Webhook, WebhookDelivery
from app.webhooks.events import EVENTS
from app.webhooks.schemas import Event
from app.webhooks.urls import url_problem
from tests.conftest import csrf_from
from tests.webhooks.conftest import Receiver, World, bearer

PAGE = "/projects/hooked/webhooks"
HOOKS = "/api/v1/projects/hooked/webhooks"


def stored(db: Database) -> list[Webhook]:
    with db.session(write=False) as s:
        found = list(s.scalars(select(Webhook).order_by(Webhook.id)))
        s.expunge_all()
    return found


def test_the_page_adds_changes_rotates_tests_and_deletes(
    client: TestClient, world: World, receiver: Receiver, db: Database, login_as: Callable[[User], str]
) -> None:
    login_as(world.admin)
    client.headers.pop("X-CSRF-Token")  # the forms carry their token in a field, as a browser posts them
    assert 'id="webhooks-link"' in client.get("/projects/hooked").text
    page = client.get(PAGE)
    assert page.status_code == 200 and 'id="no-webhooks"' in page.text
    csrf = csrf_from(page.text)
    form = {"url": receiver.url, "events": ["snapshot.ready", "project.completed"], "active": "1"}
    assert client.post(PAGE, data=form).status_code == 403  # no CSRF token
    added = client.post(PAGE, data={**form, "csrf_token": csrf, "adjudication_threshold": "5"})
    assert added.status_code == 200
    [hook] = stored(db)
    assert hook.secret.startswith("whsec_") and hook.secret in added.text  # shown this once
    assert hook.events == ["snapshot.ready", "project.completed"] and hook.adjudication_threshold == 5
    assert hook.secret not in client.get(PAGE).text

    changed = client.post(
        f"{PAGE}/{hook.id}",
        data={"csrf_token": csrf, "url": receiver.url + "/v2", "events": ["adjudication.queue"]},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    [after] = stored(db)
    assert (after.url, after.events, after.active) == (receiver.url + "/v2", ["adjudication.queue"], False)

    rotated = client.post(f"{PAGE}/{hook.id}/rotate", data={"csrf_token": csrf})
    [rotated_hook] = stored(db)
    assert rotated_hook.secret != hook.secret and rotated_hook.secret in rotated.text

    assert client.post(f"{PAGE}/{hook.id}/test", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    with db.session(write=False) as s:
        assert [d.event for d in s.scalars(select(WebhookDelivery))] == ["ping"]
    assert 'id="deliveries-' in client.get(PAGE).text

    empty = client.post(f"{PAGE}/{hook.id}", data={"csrf_token": csrf, "url": receiver.url, "events": []})
    assert empty.status_code == 422 and stored(db)[0].url == receiver.url + "/v2"  # nothing changed
    assert client.post(f"{PAGE}/{hook.id}/delete", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert stored(db) == []


def test_the_api_creates_reads_changes_and_deletes(client: TestClient, world: World, receiver: Receiver) -> None:
    admin = bearer(world.tokens["admin"])
    made = client.post(HOOKS, json={"url": receiver.url, "events": ["project.completed"]}, headers=admin)
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    hook = made.json()["id"]
    listed = client.get(HOOKS, headers=admin).json()
    assert [h["id"] for h in listed] == [hook] and "secret" not in listed[0]
    assert "secret" not in client.get(f"{HOOKS}/{hook}", headers=admin).json()
    patched = client.patch(f"{HOOKS}/{hook}", json={"adjudication_threshold": 3, "active": False}, headers=admin)
    assert patched.status_code == 200 and patched.json()["adjudication_threshold"] == 3
    assert patched.json()["active"] is False and patched.json()["url"] == receiver.url
    rotated = client.post(f"{HOOKS}/{hook}/rotate-secret", headers=admin).json()
    assert rotated["secret"] != made.json()["secret"]
    assert client.post(f"{HOOKS}/{hook}/test", headers=admin).json()["event"] == "ping"
    assert [d["event"] for d in client.get(f"{HOOKS}/{hook}/deliveries", headers=admin).json()] == ["ping"]
    assert client.delete(f"{HOOKS}/{hook}", headers=admin).status_code == 204
    assert client.get(f"{HOOKS}/{hook}", headers=admin).status_code == 404
    bad = client.post(HOOKS, json={"url": receiver.url, "events": ["item.created"]}, headers=admin)
    assert bad.status_code == 422 and "detail" in bad.json()
    none = client.post(HOOKS, json={"url": receiver.url, "events": []}, headers=admin)
    assert none.status_code == 422


def test_a_session_caller_needs_the_csrf_header(
    client: TestClient, world: World, receiver: Receiver, login_as: Callable[[User], str]
) -> None:
    token = login_as(world.admin)
    client.headers.pop("X-CSRF-Token")
    body = {"url": receiver.url, "events": ["snapshot.ready"]}
    assert client.post(HOOKS, json=body).status_code == 403
    assert client.post(HOOKS, json=body, headers={"X-CSRF-Token": token}).status_code == 201


def test_annotators_cannot_reach_webhooks(
    client: TestClient, world: World, receiver: Receiver, db: Database, login_as: Callable[[User], str]
) -> None:
    made = client.post(
        HOOKS, json={"url": receiver.url, "events": ["snapshot.ready"]}, headers=bearer(world.tokens["admin"])
    )
    hook = made.json()["id"]
    member = bearer(world.tokens["annotator"])
    assert client.get(HOOKS, headers=member).status_code == 403
    assert (
        client.post(HOOKS, json={"url": receiver.url, "events": ["snapshot.ready"]}, headers=member).status_code == 403
    )
    assert client.post(f"{HOOKS}/{hook}/rotate-secret", headers=member).status_code == 403
    assert client.get(f"{HOOKS}/{hook}/deliveries", headers=member).status_code == 403
    assert client.delete(f"{HOOKS}/{hook}", headers=member).status_code == 403
    assert client.get(HOOKS).status_code == 401
    csrf = login_as(world.annotator)
    assert client.get(PAGE).status_code in (403, 404)
    assert client.post(f"{PAGE}/{hook}/delete", data={"csrf_token": csrf}).status_code in (403, 404)
    assert 'id="webhooks-link"' not in client.get("/projects/hooked").text
    assert len(stored(db)) == 1


def test_a_webhook_of_another_project_is_not_found(
    client: TestClient, world: World, receiver: Receiver, db: Database
) -> None:
    from app.models import Project
    from tests.factories import make_project

    with db.session() as s:
        make_project(s, "elsewhere")
        assert s.scalar(select(Project).where(Project.slug == "elsewhere")) is not None
    admin = bearer(world.tokens["admin"])
    hook = client.post(HOOKS, json={"url": receiver.url, "events": ["snapshot.ready"]}, headers=admin).json()["id"]
    assert client.get(f"/api/v1/projects/elsewhere/webhooks/{hook}", headers=admin).status_code == 404
    assert client.delete(f"/api/v1/projects/elsewhere/webhooks/{hook}", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("url", "allowed_with_private"),
    [
        ("ftp://example.com/hook", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://metadata.google.internal/", False),
        ("http://[fe80::1]/", False),
        ("http://127.0.0.1/", True),
        ("http://127.1/", True),
        ("http://localhost:8000/", True),
        ("http://10.1.2.3/", True),
        ("http://192.168.0.10/", True),
        ("http://user:pw@127.0.0.1/", False),
        ("javascript:alert(1)", False),
        ("http:///nohost", False),
    ],
)
def test_urls_refused_on_save(
    client: TestClient, app: FastAPI, world: World, db: Database, url: str, allowed_with_private: bool
) -> None:
    admin = bearer(world.tokens["admin"])
    app.state.settings.allow_private_webhooks = False
    refused = client.post(HOOKS, json={"url": url, "events": ["snapshot.ready"]}, headers=admin)
    assert refused.status_code == 422, refused.text
    assert stored(db) == []
    app.state.settings.allow_private_webhooks = True
    again = client.post(HOOKS, json={"url": url, "events": ["snapshot.ready"]}, headers=admin)
    assert again.status_code == (201 if allowed_with_private else 422), again.text


def test_the_refusals_say_why() -> None:
    assert "only http:// and https://" in (url_problem("ftp://x.example/", allow_private=True) or "")
    assert "never a webhook receiver" in (url_problem("http://169.254.169.254/", allow_private=True) or "")
    private = url_problem("http://127.0.0.1/", allow_private=False) or ""
    assert "PREFSTUDIO_ALLOW_PRIVATE_WEBHOOKS" in private
    assert url_problem("http://127.0.0.1:9/", allow_private=True) is None
    assert "does not resolve" in (url_problem("http://no-such-host.invalid/", allow_private=True) or "")


def test_the_event_names_agree() -> None:
    assert Event.__args__ == EVENTS  # type: ignore[attr-defined]
    assert re.fullmatch(r"[a-z_.]+", " ".join(EVENTS).replace(" ", "."))
