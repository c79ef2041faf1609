"""An admin's import may be larger than the small body limit (the upload limit applies once they are checked),
and the body reaches the importer through a file on disk, not through memory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.items import importer
from app.models import Item
from tests.conftest import make_settings
from tests.factories import make_project, make_user

MB = 1024 * 1024


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A 1 MB small limit and an 8 MB upload limit: the same rules as the defaults, at sizes a test can afford.
    return make_settings(database_url, data_dir=tmp_path / "data", max_body_mb=1, max_upload_mb=8)


@pytest.fixture
def admin(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        root = make_user(s, "root", role="admin")
        make_project(s, "a", k=2, members=[root])
        _, token = create_api_token(s, user=root, scope="api", settings=settings)
    return {"user": root, "token": token}


def _body(size: int, tag: str) -> bytes:
    """JSONL of about ``size`` bytes, every prompt different."""
    lines, total, i = [], 0, 0
    while total < size:
        line = json.dumps({"prompt": f"{tag} {i} " + "w" * 20_000}) + "\n"
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines).encode()


def _items(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Item)) or 0)


def test_an_admin_import_over_the_small_limit_still_works(
    client: TestClient, admin: dict[str, Any], db: Database, login_as: Any
) -> None:
    bearer = {"Authorization": f"Bearer {admin['token']}"}
    raw = _body(3 * MB, "raw")
    r = client.post(
        "/api/v1/projects/a/import", content=raw, headers={**bearer, "Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 201, r.text[:300]
    created = r.json()["created"]
    assert created == raw.count(b"\n")
    multipart = _body(3 * MB, "multipart")
    r = client.post("/api/v1/projects/a/import", files={"file": ("m.jsonl", multipart)}, headers=bearer)
    assert r.status_code == 201, r.text[:300]
    created += r.json()["created"]
    # The page's form (htmx sends the CSRF token as a header).
    login_as(admin["user"])
    page = _body(3 * MB, "page")
    r = client.post("/projects/a/import", files={"file": ("p.jsonl", page)}, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text[:300]
    assert _items(db) == created + page.count(b"\n")
    # Still bounded by the upload limit.
    too_big = _body(9 * MB, "big")
    r = client.post("/api/v1/projects/a/import", content=too_big, headers={**bearer, "Content-Type": "text/csv"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]


@pytest.mark.parametrize("how", ["raw", "multipart"])
def test_the_import_reads_its_body_from_a_file_on_disk(
    client: TestClient, admin: dict[str, Any], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    seen: dict[str, Any] = {}
    real = importer.import_items

    def spy(session: Any, *, project: Any, stream: IO[bytes], filename: str | None, **more: Any) -> Any:
        rolled = getattr(stream, "_rolled", True)  # a SpooledTemporaryFile still in memory has _rolled False
        seen["on_disk"] = rolled
        seen["size"] = os.fstat(stream.fileno()).st_size if rolled else -1
        return real(session, project=project, stream=stream, filename=filename, **more)

    monkeypatch.setattr("app.items.api.import_items", spy)
    body = _body(2 * MB, how)
    bearer = {"Authorization": f"Bearer {admin['token']}"}
    if how == "raw":
        r = client.post(
            "/api/v1/projects/a/import", content=body, headers={**bearer, "Content-Type": "application/x-ndjson"}
        )
    else:
        r = client.post("/api/v1/projects/a/import", files={"file": ("m.jsonl", body)}, headers=bearer)
    assert r.status_code == 201, r.text[:300]
    assert seen["on_disk"], "the upload was held in memory"
    assert seen["size"] == len(body)
