"""A dimension's settings through the JSON API: optional, and its text per UI language (stored only when given)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.db import Database
from app.models import Project, User
from tests.factories import make_user


def test_required_and_labels_round_trip_and_are_checked(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    dims = [
        {"key": "helpful", "label": "Helpful", "labels": {"zh_Hans": {"label": "有帮助", "description": "回答请求"}}},
        {"key": "style", "label": "Style", "required": False, "labels": {"zh_Hans": {"label": " ", "description": ""}}},
    ]
    created = client.post("/api/v1/projects", json={"name": "Dims", "slug": "dims", "dimensions": dims})
    assert created.status_code == 201, created.text
    out = {d["key"]: d for d in created.json()["dimensions"]}
    assert out["helpful"]["required"] is True
    assert out["helpful"]["labels"] == {"zh_Hans": {"label": "有帮助", "description": "回答请求"}}
    assert out["style"]["required"] is False and out["style"]["labels"] == {}  # blank text is no text
    with db.session(write=False) as s:
        project = s.query(Project).filter_by(slug="dims").one()
        # stored as before for what is not set: no "required": true, no empty "labels"
        assert project.dimensions == [
            {
                "key": "helpful",
                "label": "Helpful",
                "description": "",
                "labels": {"zh_Hans": {"label": "有帮助", "description": "回答请求"}},
            },
            {"key": "style", "label": "Style", "description": "", "required": False},
        ]
    unknown = client.patch(
        "/api/v1/projects/dims", json={"dimensions": [{"key": "a", "label": "A", "labels": {"fr": {"label": "x"}}}]}
    )
    assert unknown.status_code == 422 and "fr" in unknown.text
