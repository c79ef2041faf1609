"""A project's rubric names only the fields the judge fills, and all the required ones: saving (page or API)
says which placeholder is wrong; ``{{`` and ``}}`` write literal braces."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.judge import rubric
from app.models import Project, User
from tests.factories import make_project, make_user

SERVER = "http://127.0.0.1:8011"
GOOD = "Judge {dimension} ({dimension_description}).\n{guidelines}\n{prompt}\n{candidates}\n{instruction}"


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("", []),  # the built-in rubric
        (rubric.DEFAULT_RUBRIC, []),
        (GOOD, []),
        ('{dimension} {prompt} {candidates} answer as {{"verdict": ...}}', []),  # escaped braces
        ('{dimension} {prompt} {candidates} JSON like {"verdict": "A"}', []),  # not a field name: literal
        ("{dimension} {prompt} {candidates} {rubric_version}", ["Unknown placeholder {rubric_version}"]),
        (
            "{dimension} {Prompt} {candidates}",
            ["Unknown placeholder {Prompt}", "must contain the placeholder {prompt}"],
        ),
        ("{dimension} { prompt } {candidates}", ["{ prompt }", "must contain the placeholder {prompt}"]),
        ("{{dimension}} {prompt} {candidates}", ["must contain the placeholder {dimension}"]),  # escaped: not a field
        ("Judge {prompt}", ["{dimension}", "{candidates}"]),
    ],
)
def test_rubric_problems_name_the_placeholder(text: str, problems: list[str]) -> None:
    found = rubric.rubric_problems(text)
    assert len(found) == len(problems), found
    for said, expected in zip(found, problems, strict=True):
        assert expected in said


def test_escaped_braces_are_literal_and_values_are_never_read_as_fields() -> None:
    text = rubric.build_prompt(
        '{{"best": {dimension}}} {prompt} {candidates} {{{{x}}}}',
        guidelines="",
        dimension={"label": "Helpful"},
        prompt="say {candidates} and {{",
        texts=["one", "two"],
        max_chars=100,
    )
    assert text.startswith('{"best": Helpful} say {candidates} and {{ <<<ANSWER A')
    assert text.endswith("ANSWER B>>> {{x}}")


def test_guidelines_naming_a_later_field_stay_as_written() -> None:
    text = rubric.build_prompt(
        "{guidelines}|{prompt}|{candidates}",
        guidelines="Be {prompt}",
        dimension={},
        prompt="P",
        texts=["a", "b"],
        max_chars=100,
    )
    assert text.startswith("Be {prompt}|P|")


@pytest.fixture
def admin(db: Database) -> User:
    with db.session() as s:
        user = make_user(s, "boss", role="admin")
        make_project(s, "jp", k=2, overlap=1)
        s.commit()
        return user


def _rubric(db: Database) -> str | None:
    with db.session() as s:
        project = s.query(Project).filter_by(slug="jp").one()
        return (project.judge or {}).get("rubric")


def test_the_page_names_the_unknown_placeholder(
    client: TestClient, admin: User, login_as: Callable[[User], str], db: Database
) -> None:
    login_as(admin)
    form = {"judges": f"m@{SERVER}", "concurrency": "8", "max_candidate_chars": "500"}
    bad = client.post("/projects/jp/judge/settings", data={**form, "rubric": "{dimension} {prompt} {answers}"})
    assert bad.status_code == 422 and 'id="settings-error"' in bad.text
    assert "Unknown placeholder {answers}" in bad.text and "must contain the placeholder {candidates}" in bad.text
    assert "{dimension} {prompt} {answers}" in bad.text  # what was typed stays in the form
    assert _rubric(db) is None
    ok = client.post("/projects/jp/judge/settings", data={**form, "rubric": GOOD}, follow_redirects=False)
    assert ok.status_code == 303 and _rubric(db) == GOOD


def test_the_api_answers_422_naming_the_placeholder(
    client: TestClient, admin: User, db: Database, settings: Settings
) -> None:
    with db.session() as s:
        token = create_api_token(s, user=s.merge(admin), scope="api", settings=settings)[1]
    headers = {"Authorization": f"Bearer {token}"}
    url = "/api/v1/projects/jp/judge/settings"
    judges = [{"base_url": SERVER, "model": "m"}]
    bad = client.put(url, json={"judges": judges, "rubric": "{dimension} {candidates}: {prompt_text}"}, headers=headers)
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert {d["loc"][0] for d in detail} == {"rubric"}
    assert any("{prompt_text}" in d["msg"] for d in detail) and any("{prompt}" in d["msg"] for d in detail)
    assert _rubric(db) is None
    escaped = "{dimension} {prompt} {candidates} {{literal}}"
    ok = client.put(url, json={"judges": judges, "rubric": escaped}, headers=headers)
    assert ok.status_code == 200 and ok.json()["rubric"] == escaped and _rubric(db) == escaped
