"""The JSON API against its own OpenAPI document, fuzzed with schemathesis, for every kind of caller.

Each operation of ``/openapi.json`` gets a bounded number of generated requests (valid and invalid ones) as
anonymous, an annotator of project "a", an annotator of project "b" and an admin (API bearer tokens). Any
5xx, undocumented status code, undocumented content type or response that does not match its schema fails.
Path parameters are steered toward the real projects and small ids, so requests get past the 404s.
Set PREFSTUDIO_FUZZ_EXAMPLES to explore harder locally; the default keeps the whole file well under a minute
a database.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("PREFSTUDIO_FUZZ_EXAMPLES", "12"))
ROLES = ["anonymous", "alice", "bob", "root"]  # alice: annotator of "a"; bob: of "b"; root: admin
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        root, alice, bob = make_user(s, "root", role="admin"), make_user(s, "alice"), make_user(s, "bob")
        a = make_project(s, "a", k=2, overlap=2, members=[alice])
        b = make_project(s, "b", k=2, overlap=2, members=[bob])
        make_items(s, a, 3)
        make_items(s, b, 2)
        task = assign_next_item(s, project=a, annotator=alice)
        assert task is not None
        judgment, _ = submit_judgment(
            s,
            project=a,
            annotator=alice,
            assignment_id=task.assignment.id,
            submit_key="schema-0001",
            data=prefer_first(task, a),
        )
        lease = assign_next_item(s, project=a, annotator=alice)  # an open lease too
        assert lease is not None
        tokens = {
            u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (root, alice, bob)
        }
        return {
            "tokens": tokens,
            "judgment": judgment.id,
            "submitted": task.assignment.id,
            "lease": lease.assignment.id,
            "candidates": [c.id for c in task.candidates],
        }


def _auth(world: dict[str, Any], role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"Authorization": f"Bearer {world['tokens'][role]}"}


def _message(exc: BaseException) -> str:
    parts = [str(exc), *(str(e) for e in getattr(exc, "exceptions", ()))]
    return f"{type(exc).__name__}: " + "\n".join(parts)[:2000]


def _property(operation: schemathesis.APIOperation, headers: dict[str, str], examples: int) -> Any:
    """One operation's test: ``examples`` generated requests (valid and invalid), each response checked."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: a failure in CI reproduces locally
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, the first failure is reported
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from(MODES))
        case = data.draw(operation.as_strategy(generation_mode=mode))
        for name, value in list((case.path_parameters or {}).items()):
            if name == "project":
                case.path_parameters[name] = data.draw(st.sampled_from(["a", "b", value]))
            elif name.endswith("_id") and mode == schemathesis.GenerationMode.POSITIVE:
                case.path_parameters[name] = data.draw(st.sampled_from([1, 2, 3, value]))
        if (
            isinstance(case.body, dict)
            and "assignment_id" in case.body
            and mode == schemathesis.GenerationMode.POSITIVE
        ):
            case.body["assignment_id"] = data.draw(st.sampled_from([1, 2, case.body["assignment_id"]]))
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    return run


def fuzz(app: FastAPI, *, headers: dict[str, str], examples: int) -> dict[str, str]:
    """Run every operation of the app's OpenAPI document; returns {operation: first failure} (empty: all fine)."""
    app.openapi()  # built (and kept by the app) here: built inside schemathesis' 10 s read timeout, on a busy
    # 2-CPU machine the first /openapi.json once took longer than that
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _property(operation, headers, examples)()
        except (Exception, FailureGroup, Failure) as exc:  # server errors surface as the app's own exception
            failures[operation.label] = _message(exc)
    return failures


@pytest.mark.parametrize("role", ROLES)
def test_api_keeps_to_its_schema(app: FastAPI, world: dict[str, Any], role: str) -> None:
    failures = fuzz(app, headers=_auth(world, role), examples=EXAMPLES)
    assert not failures, "\n\n".join(f"{label}\n{message}" for label, message in failures.items())


def test_known_conflicts_and_retries_are_documented(app: FastAPI, world: dict[str, Any]) -> None:
    """Answers that random requests rarely reach: 409s, and 200 for a repeated submission."""
    app.openapi()  # see fuzz()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    root, alice = _auth(world, "root"), _auth(world, "alice")
    first, last = world["candidates"][0], world["candidates"][-1]
    verdicts = {
        d: {"kind": "preference", "chosen": first, "rejected": last}
        for d in ("overall", "helpful", "harmless", "honest", "polite", "refusal")
    }
    calls: list[tuple[str, str, dict[str, str], dict[str, Any], int]] = [
        ("/api/v1/projects", "POST", root, {"body": {"name": "A", "slug": "a"}}, 409),
        (
            "/api/v1/projects/{project}/judgments/{judgment_id}",
            "PUT",
            alice,
            {
                "path_parameters": {"project": "a", "judgment_id": world["judgment"]},
                "body": {"verdicts": verdicts, "version": 7},
            },
            409,
        ),
        (
            "/api/v1/projects/{project}/assignments/{assignment_id}/skip",
            "POST",
            alice,
            {"path_parameters": {"project": "a", "assignment_id": world["submitted"]}, "body": {}},
            409,
        ),
        (
            "/api/v1/projects/{project}/judgments",
            "POST",
            alice,
            {
                "path_parameters": {"project": "a"},
                "body": {"assignment_id": world["submitted"], "submit_key": "schema-0001", "verdicts": verdicts},
            },
            200,
        ),
    ]
    for path, method, headers, fields, expected in calls:
        case = schema[path][method].Case(**fields)
        response = case.call(headers=headers)
        assert response.status_code == expected, (path, response.text)
        case.validate_response(response, checks=CHECKS, headers=headers)


class _Out(BaseModel):
    n: int


def test_the_fuzzer_reports_server_errors_and_wrong_responses() -> None:
    """The harness itself: an app that crashes or breaks its schema must not pass."""
    bad = FastAPI()

    @bad.get("/crash", response_model=_Out)
    def crash() -> _Out:
        raise RuntimeError("boom")

    @bad.get("/wrong-shape", response_model=_Out)
    def wrong_shape() -> JSONResponse:
        return JSONResponse({"n": "not a number"})

    @bad.get("/undocumented", response_model=_Out)
    def undocumented() -> JSONResponse:
        return JSONResponse({"n": 1}, status_code=418)

    @bad.get("/fine", response_model=_Out)
    def fine() -> _Out:
        return _Out(n=1)

    failures = fuzz(bad, headers={}, examples=3)
    assert set(failures) == {"GET /crash", "GET /wrong-shape", "GET /undocumented"}
    assert "boom" in failures["GET /crash"]


def test_ids_beyond_the_database_range_are_a_4xx_on_pages_too(client: TestClient, world: dict[str, Any]) -> None:
    """Pages are not in the OpenAPI document: a 64-bit id in their paths must not reach the database either."""
    client.headers["Authorization"] = f"Bearer {world['tokens']['root']}"  # a token: no CSRF token needed
    routes = [
        (method, route.path)
        for route in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if route.path and "_id}" in route.path and not route.path.startswith("/api/")
        for method in (route.methods or set()) & {"GET", "POST"}
    ]
    assert len(routes) >= 15
    for method, template in routes:
        path = "/".join(str(2**40) if p.endswith("_id}") else p for p in template.replace("{project}", "a").split("/"))
        r = client.request(method, path, data={}, follow_redirects=False)
        assert 400 <= r.status_code < 500, (method, path, r.status_code)
