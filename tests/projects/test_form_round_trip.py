"""The project form gives back whatever the API accepts: saving it unchanged changes nothing, byte for byte."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.models import User
from tests.factories import make_user


class _Form(HTMLParser):
    """The fields a browser would submit from the form posting to ``action``, unchanged by the user."""

    def __init__(self, action: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action = action
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("action") == self.action:
            self._in_form = True
        elif self._in_form and tag == "input" and "name" in a:
            value = a.get("value", "")
            if a.get("type", "text") in ("text", "hidden", "number"):
                value = value.replace("\n", "")  # an input's value sanitization strips line breaks
            self.fields.append((a["name"], value))
        elif self._in_form and tag == "textarea":
            self._textarea, self._text = a["name"], []
        elif self._in_form and tag == "select":
            self._select = a["name"]
        elif self._in_form and tag == "option" and self._select is not None and "selected" in dict(attrs):
            self.fields.append((self._select, a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            text = "".join(self._text)
            text = text[1:] if text.startswith("\n") else text  # the parser drops a newline right after <textarea>
            self.fields.append((self._textarea, text))
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def browser_submission(html: str, action: str = "/projects/rt/edit") -> list[tuple[str, str]]:
    """The form as a browser posts it: the document's line breaks read as LF, each field's sent as CRLF."""
    parser = _Form(action)
    parser.feed(html.replace("\r\n", "\n").replace("\r", "\n"))
    return [(name, value.replace("\n", "\r\n")) for name, value in parser.fields]


HOSTILE: dict[str, Any] = {
    "name": "Pipes | and <tags> & “quotes”",
    "slug": "rt",
    "guidelines": "\n# Starts with a newline\r\nCRLF, a lone \r CR, </textarea> and &amp; stay\n\n",
    "dimensions": [
        {"key": "clarity", "label": "Clear | concise", "description": "line one\nline two | a pipe\n\n  indented"},
        {"key": "tone", "label": "Tone", "description": "\nstarts with a newline"},
        {"key": "wrapped", "label": "A label\nwith a line break", "description": ""},
        {"key": "spaced", "label": "  spaced label  ", "description": "trailing space "},
    ],
    "k": 3,
    "overlap": 2,
    "lease_minutes": 45,
    "gold_share": 0.123456,
    "gold_min_accuracy": 0.7071067811865476,
}


@pytest.mark.parametrize("gold_share", [0.123456, 1e-20, 0.1, 0.07, 1.0, 0.0])
def test_a_project_made_through_the_api_survives_an_unchanged_form_save(
    client: TestClient, db: Database, login_as: Callable[[User], str], gold_share: float
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    created = client.post("/api/v1/projects", json={**HOSTILE, "gold_share": gold_share})
    assert created.status_code == 201, created.text
    before = client.get("/api/v1/projects/rt").content

    page = client.get("/projects/rt/edit")
    assert page.status_code == 200
    saved = client.post("/projects/rt/edit", data=dict(browser_submission(page.text)), follow_redirects=False)
    assert saved.status_code == 303, saved.text[:500]
    assert client.get("/api/v1/projects/rt").content == before
    assert json.loads(before)["gold_share"] == gold_share


def test_labels_and_names_are_one_line_and_text_has_lf_line_breaks(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    """What an input or a textarea cannot give back is normalised alike by the API and the form."""
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    project = client.post("/api/v1/projects", json={**HOSTILE, "name": " Two\r\nlines "}).json()
    assert project["name"] == "Two lines"
    assert [d["label"] for d in project["dimensions"]] == [
        "Clear | concise",
        "Tone",
        "A label with a line break",
        "spaced label",
    ]
    assert project["guidelines"] == "\n# Starts with a newline\nCRLF, a lone \n CR, </textarea> and &amp; stay\n\n"
    patched = client.patch(
        "/api/v1/projects/rt", json={"dimensions": [{"key": "a", "label": "x", "description": "1\r\n2"}]}
    )
    assert patched.json()["dimensions"] == [
        {"key": "a", "label": "x", "description": "1\n2", "required": True, "labels": {}}
    ]


def test_the_form_adds_and_removes_dimensions_by_row(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    assert client.post("/api/v1/projects", json={**HOSTILE, "dimensions": HOSTILE["dimensions"][:2]}).status_code == 201
    fields = dict(browser_submission(client.get("/projects/rt/edit").text))
    assert fields["dimension-2-key"] == "" and fields["dimension-3-key"] == ""  # two empty rows to add to
    fields.update({"dimension-0-key": "", "dimension-0-label": "", "dimension-0-description": ""})
    fields.update({"dimension-2-key": "new", "dimension-2-label": "", "dimension-2-description": "a | b"})
    assert client.post("/projects/rt/edit", data=fields, follow_redirects=False).status_code == 303
    dims = client.get("/api/v1/projects/rt").json()["dimensions"]
    assert dims == [
        {"key": "tone", "label": "Tone", "description": "\nstarts with a newline", "required": True, "labels": {}},
        {"key": "new", "label": "New", "description": "a | b", "required": True, "labels": {}},
    ]
    missing_key = client.post("/projects/rt/edit", data={**fields, "dimension-3-label": "No key"})
    assert missing_key.status_code == 422 and "a key is needed" in missing_key.text
    assert re.search(r'name="dimension-3-label" [^>]*value="No key"', missing_key.text)  # the form comes back as sent


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "bad \ud800"), ("guidelines", "\udfff"), ("label", "\ud800"), ("description", "x\udc00")],
)
def test_lone_surrogates_in_project_text_are_a_422(
    client: TestClient, db: Database, login_as: Callable[[User], str], field: str, value: str
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    body: dict[str, Any] = {"name": "ok", "slug": "sur"}
    if field in ("label", "description"):
        body["dimensions"] = [{"key": "d", "label": "L", **{field: value}}]
    else:
        body[field] = value
    headers = {"Content-Type": "application/json"}
    r = client.post("/api/v1/projects", content=json.dumps(body), headers=headers)
    assert r.status_code == 422, r.text[:300]
    assert field in r.json()["detail"][0]["loc"]


@pytest.mark.parametrize("username", ["\ud800", "a\x00b"])
def test_a_member_name_the_database_cannot_hold_is_a_422_naming_it(
    client: TestClient, db: Database, login_as: Callable[[User], str], username: str
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    assert client.post("/api/v1/projects", json={"name": "ok", "slug": "mem"}).status_code == 201
    body = json.dumps({"username": username})
    r = client.post("/api/v1/projects/mem/members", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "username"], r.text[:300]
