"""Every request body has the small limit until an import route has checked its caller; only then may an upload
grow to the upload limit. Measured by what the app actually pulled from the connection (a counting receive)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.auth.deps import SESSION_COOKIE
from app.auth.service import create_api_token, start_session
from app.config import Settings
from app.db import Database
from app.models import AuthSession
from tests.factories import make_project, make_user
from tests.security.test_limits import MB, _jsonl_chunks, _Upload

MULTIPART_HEAD = (
    b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
    b"Content-Type: application/x-ndjson\r\n\r\n"
)
MULTIPART = "multipart/form-data; boundary=BOUNDARY"


@pytest.fixture
def people(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        root = make_user(s, "root", role="admin")
        ann = make_user(s, "ann")
        make_project(s, "a", k=2, members=[root, ann])
        _, admin_token = create_api_token(s, user=root, scope="api", settings=settings)
        _, ann_token = create_api_token(s, user=ann, scope="api", settings=settings)
        ann_cookie = start_session(s, user=ann, settings=settings)
        ann_csrf = s.scalar(select(AuthSession.csrf_token))
        admin_cookie = start_session(s, user=root, settings=settings)
    return {
        "admin_token": admin_token,
        "admin_cookie": admin_cookie,
        "ann_token": ann_token,
        "ann_cookie": ann_cookie,
        "ann_csrf": ann_csrf,
    }


def _callers(people: dict[str, Any]) -> dict[str, tuple[str, dict[str, str], bytes]]:
    jsonl = {"Content-Type": "application/x-ndjson"}
    multipart = {"Content-Type": MULTIPART}
    ann_bearer = {"Authorization": f"Bearer {people['ann_token']}"}
    ann_cookie = {"Cookie": f"{SESSION_COOKIE}={people['ann_cookie']}", "X-CSRF-Token": people["ann_csrf"]}
    admin_cookie_no_csrf_header = {"Cookie": f"{SESSION_COOKIE}={people['admin_cookie']}"}
    return {
        "anonymous multipart to /login": ("/login", multipart, MULTIPART_HEAD),
        "anonymous jsonl to /login": ("/login", jsonl, b""),
        "anonymous jsonl to an API route": ("/api/v1/projects", jsonl, b""),
        "anonymous multipart to an API route": ("/api/v1/projects", multipart, MULTIPART_HEAD),
        "anonymous csv to the admin users page": ("/admin/users", {"Content-Type": "text/csv"}, b""),
        "anonymous jsonl to the import API": ("/api/v1/projects/a/import", jsonl, b""),
        "anonymous multipart to the import page": ("/projects/a/import", multipart, MULTIPART_HEAD),
        "annotator's token to the import API": ("/api/v1/projects/a/import", {**jsonl, **ann_bearer}, b""),
        "annotator's session to the import page": ("/projects/a/import", {**multipart, **ann_cookie}, MULTIPART_HEAD),
        # The CSRF token inside the body: the form is read to find it, before the caller is checked.
        "admin's session, CSRF token in the body": (
            "/projects/a/import",
            {**multipart, **admin_cookie_no_csrf_header},
            MULTIPART_HEAD,
        ),
    }


CASES = [
    "anonymous multipart to /login",
    "anonymous jsonl to /login",
    "anonymous jsonl to an API route",
    "anonymous multipart to an API route",
    "anonymous csv to the admin users page",
    "anonymous jsonl to the import API",
    "anonymous multipart to the import page",
    "annotator's token to the import API",
    "annotator's session to the import page",
    "admin's session, CSRF token in the body",
]


@pytest.mark.parametrize("case", CASES)
def test_a_large_body_before_authorisation_gets_only_the_small_limit(
    app: FastAPI, people: dict[str, Any], settings: Settings, case: str
) -> None:
    path, headers, first = _callers(people)[case]
    small = settings.max_body_mb * MB
    upload_limit = settings.max_upload_mb * MB
    streamed = _Upload(
        app, path=path, headers=headers, chunks=_jsonl_chunks(upload_limit, first=first), cap=upload_limit
    ).run()
    assert streamed.status in (303, 401, 403, 404, 413), (streamed.status, streamed.body[:200])
    assert streamed.consumed <= small + MB + len(first), f"read {streamed.consumed / MB:.0f} MB before refusing"
    # 150 MB declared up front (under the upload limit): refused before a byte of the body is read.
    declared = _Upload(
        app,
        path=path,
        headers={**headers, "Content-Length": str(150 * MB)},
        chunks=_jsonl_chunks(150 * MB, first=first),
        cap=upload_limit,
    ).run()
    assert declared.status in (303, 401, 403, 404, 413), (declared.status, declared.body[:200])
    assert declared.consumed == 0
