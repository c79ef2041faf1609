"""Import input that a database or a JSON reader cannot take: a 422 naming the line and the field, nothing written."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.items.importer import MAX_DUPLICATES_LISTED, MAX_JSON_DEPTH, ImportFailed, import_items
from app.models import Candidate, Item, Project, User
from tests.factories import make_project, make_user


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def _body(*lines: str) -> bytes:
    # Lone surrogates cannot be encoded: they only ever reach the server as JSON escapes ("\ud800").
    return "".join(line + "\n" for line in lines).encode()


def _count(db: Database, model: Any = Item) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _refused(db: Database, body: bytes, *, filename: str = "f.jsonl") -> dict[int, str]:
    """The errors of an import that must fail, by line; the project keeps exactly what it had."""
    before = (_count(db), _count(db, Candidate))
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == "lim")) or make_project(s, "lim", k=2)
        s.flush()
        with pytest.raises(ImportFailed) as failure:
            import_items(s, project=project, stream=io.BytesIO(body), filename=filename)
    assert (_count(db), _count(db, Candidate)) == before
    return {e["line"]: e["message"] for e in failure.value.errors}


@pytest.fixture
def admin_client(client: TestClient, db: Database, login_as: Callable[[User], str]) -> TestClient:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        project = make_project(s, "lim", k=2)
        # Something already in the project: a refused import must leave it as it was.
        import_items(s, project=project, stream=io.BytesIO(_body(_line({"prompt": "kept"}))), filename="a.jsonl")
    login_as(admin)
    return client


def _api_import(client: TestClient, db: Database, body: bytes) -> dict[int, str]:
    before = (_count(db), _count(db, Candidate))
    r = client.post("/api/v1/projects/lim/import", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 422, r.text[:500]
    assert (_count(db), _count(db, Candidate)) == before
    return {e["line"]: e["message"] for e in r.json()["detail"]["errors"]}


def test_a_line_nested_100000_levels_deep_is_a_422_with_its_line(admin_client: TestClient, db: Database) -> None:
    deep = '{"prompt": "deep", "meta": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    errors = _api_import(admin_client, db, _body(_line({"prompt": "fine"}), deep))
    assert list(errors) == [2] and "nested" in errors[2]


def test_meta_and_params_nest_at_most_max_json_depth_levels(db: Database) -> None:
    def nested(levels: int) -> Any:
        value: Any = "leaf"
        for _ in range(levels):  # a level is an object
            value = {"x": value}
        return value

    ok = nested(MAX_JSON_DEPTH)
    too_deep = nested(MAX_JSON_DEPTH + 1)
    errors = _refused(
        db,
        _body(
            _line({"prompt": "a", "meta": ok}),
            _line({"prompt": "b", "meta": too_deep}),
            _line({"prompt": "c", "candidates": [{"text": "x", "params": too_deep}, "y"]}),
            _line({"prompt": "d", "candidates": [{"text": "x", "params": ok}, "y"]}),
        ),
    )
    assert sorted(errors) == [2, 3]
    assert f"more than {MAX_JSON_DEPTH} levels" in errors[2] and "'meta'" in errors[2]
    assert "'candidates[1].params'" in errors[3]
    deep_csv = '{""a"": ' + "[" * 100_000 + "]" * 100_000 + "}"
    csv_errors = _refused(db, f'prompt,meta\nfine,\ndeep,"{deep_csv}"\n'.encode(), filename="deep.csv")
    assert list(csv_errors) == [3] and "nested" in csv_errors[3]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_refused_with_the_line_and_the_field(db: Database, constant: str) -> None:
    errors = _refused(
        db,
        _body(
            _line({"prompt": "fine"}),
            '{"prompt": "p", "candidates": [{"text": "a", "params": {"temperature": CONSTANT}}, "b"]}'.replace(
                "CONSTANT", constant
            ),
            '{"prompt": "m", "meta": {"score": [1, CONSTANT]}}'.replace("CONSTANT", constant),
        ),
    )
    assert sorted(errors) == [2, 3]
    assert "'candidates[1].params.temperature'" in errors[2] and "finite" in errors[2]
    assert "'meta.score[2]'" in errors[3] and "finite" in errors[3]


def test_nan_is_refused_through_the_api_on_both_databases(admin_client: TestClient, db: Database) -> None:
    line = '{"prompt": "p", "candidates": [{"text": "a", "params": {"top_p": NaN}}, "b"]}'
    errors = _api_import(admin_client, db, _body(_line({"prompt": "new"}), line))
    assert list(errors) == [2] and "'candidates[1].params.top_p'" in errors[2]


def test_nul_in_id_model_meta_names_the_field(admin_client: TestClient, db: Database) -> None:
    errors = _api_import(
        admin_client,
        db,
        _body(
            _line({"id": "a\x00b", "prompt": "one"}),
            _line({"prompt": "two", "candidates": [{"text": "a", "model": "m\x00"}, "b"]}),
            _line({"prompt": "three", "meta": {"note": "x\x00"}}),
            _line({"prompt": "four", "meta": {"k\x00": 1}}),
            _line({"prompt": "five", "candidates": [{"text": "a", "finish_reason": "\x00"}, "b"]}),
        ),
    )
    assert sorted(errors) == [1, 2, 3, 4, 5]
    assert all("NUL" in message for message in errors.values())
    assert "'id'" in errors[1] and "'candidates[1].model'" in errors[2] and "'meta.note'" in errors[3]
    assert "'meta'" in errors[4] and "'candidates[1].finish_reason'" in errors[5]


def test_lone_surrogates_are_refused_wherever_they_are(admin_client: TestClient, db: Database) -> None:
    lines = [
        '{"prompt": "bad \\ud800 prompt"}',
        '{"id": "\\udc00", "prompt": "id"}',
        '{"prompt": "cand", "candidates": ["\\ud800", "b"]}',
        '{"prompt": "meta", "meta": {"x": "\\ud800"}}',
        '{"prompt": "key", "meta": {"\\ud800": 1}}',
        '{"prompt": [{"role": "user", "content": "\\udfff"}]}',
        '{"prompt": "model", "candidates": [{"text": "a", "model": "\\ud800"}, "b"]}',
        '{"prompt": "fine pair \\ud83d\\ude00"}',  # a pair is a real character (an emoji)
    ]
    errors = _api_import(admin_client, db, _body(*lines))
    assert sorted(errors) == [1, 2, 3, 4, 5, 6, 7]
    assert all("surrogate" in message for message in errors.values())
    assert "'prompt'" in errors[1] and "'id'" in errors[2] and "candidate 1 text" in errors[3]
    assert "'meta.x'" in errors[4] and "message 1 content" in errors[6]


def test_integers_out_of_the_columns_range_are_refused(admin_client: TestClient, db: Database) -> None:
    big = 2**63
    lines = [
        _line({"prompt": "seed", "candidates": [{"text": "a", "seed": big}, "b"]}),
        _line({"prompt": "tokens", "candidates": [{"text": "a", "prompt_tokens": big}, "b"]}),
        _line({"prompt": "pg seed", "candidates": [{"text": "a", "seed": 2**31}, "b"]}),
        _line({"prompt": "negative", "candidates": [{"text": "a", "completion_tokens": -1}, "b"]}),
        '{"id": ' + "7" * 5_000 + ', "prompt": "long id"}',
        _line({"id": "8" * 5_000, "prompt": "long string id"}),
        _line({"prompt": "fine", "candidates": [{"text": "a", "seed": 2**31 - 1, "prompt_tokens": 12}, "b"]}),
    ]
    errors = _api_import(admin_client, db, _body(*lines))
    assert sorted(errors) == [1, 2, 3, 4, 5, 6]
    assert "'seed'" in errors[1] and "'prompt_tokens'" in errors[2] and "'seed'" in errors[3]
    assert "'completion_tokens'" in errors[4] and "digits" in errors[5] and "200 characters" in errors[6]


def test_the_csv_meta_cell_is_checked_like_a_jsonl_line(db: Database) -> None:
    body = 'prompt,meta\nfine,\nnan,"{""s"": NaN}"\nnul,"{""s"": ""\\u0000""}"\n'
    errors = _refused(db, body.encode(), filename="cells.csv")
    assert sorted(errors) == [3, 4]
    assert "'meta.s'" in errors[3] and "finite" in errors[3] and "NUL" in errors[4]


def _duplicates_file(n: int) -> bytes:
    return _body(_line({"prompt": "same"}), *[_line({"prompt": "SAME"}) for _ in range(n)])


def test_duplicates_are_all_counted_and_the_first_n_listed(db: Database) -> None:
    n = MAX_DUPLICATES_LISTED + 50
    with db.session() as s:
        project = make_project(s, "dups", k=2)
        result = import_items(s, project=project, stream=io.BytesIO(_duplicates_file(n)), filename="d.jsonl")
    assert (result.created, result.duplicate_count, len(result.duplicates)) == (1, n, MAX_DUPLICATES_LISTED)
    assert [d["line"] for d in result.duplicates] == list(range(2, MAX_DUPLICATES_LISTED + 2))


def test_duplicates_are_bounded_in_the_json_answer_and_the_page(admin_client: TestClient, db: Database) -> None:
    n = MAX_DUPLICATES_LISTED + 50
    r = admin_client.post(
        "/api/v1/projects/lim/import", content=_duplicates_file(n), headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 201, r.text[:300]
    answer = r.json()
    assert (answer["duplicate_count"], len(answer["duplicates"])) == (n, MAX_DUPLICATES_LISTED)
    # The same file again: now its first line is a duplicate too.
    page = admin_client.post("/projects/lim/import", files={"file": ("d.jsonl", _duplicates_file(n))})
    assert page.status_code == 200
    assert f"{n + 1} duplicates skipped" in page.text
    assert page.text.count("<li>line ") == MAX_DUPLICATES_LISTED
    assert f"the first {MAX_DUPLICATES_LISTED} are listed" in page.text


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_counts_every_duplicate_and_lists_a_few(cli_env: None, db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        make_project(s, "clid", k=2)
    path = tmp_path / "d.jsonl"
    path.write_bytes(_duplicates_file(MAX_DUPLICATES_LISTED + 50))
    result = CliRunner().invoke(cli, ["import", "clid", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{MAX_DUPLICATES_LISTED + 50} duplicates skipped" in " ".join(result.output.split())  # rich wraps
    assert result.output.count("  line ") == 20 and "… and 130 more" in result.output


def test_cli_refuses_a_deep_line_with_its_number(cli_env: None, db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        make_project(s, "clin", k=2)
    path = tmp_path / "n.jsonl"
    path.write_bytes(_body(_line({"prompt": "x"}), '{"prompt": "y", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"))
    result = CliRunner().invoke(cli, ["import", "clin", str(path)])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "line 2" in output and "nested" in output
    assert _count(db) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/projects/lim/items/99999999999999999999"),
        ("GET", "/api/v1/projects/lim/items/-99999999999999999999"),
        ("GET", "/api/v1/projects/lim/items?after_id=99999999999999999999"),
        ("GET", "/api/v1/projects/lim/items?limit=99999999999999999999"),
        ("PUT", "/api/v1/projects/lim/items/99999999999999999999/gold"),
        ("DELETE", "/api/v1/projects/lim/members/99999999999999999999"),
        ("POST", "/api/v1/projects/lim/members/99999999999999999999/pause"),
        ("GET", "/projects/lim/items/99999999999999999999"),
        ("GET", "/projects/lim/items?after_id=99999999999999999999"),
        ("GET", "/api/v1/projects/lim%00/items"),
        ("GET", "/api/v1/projects/" + "9" * 5_000),
    ],
)
def test_overflowing_path_and_query_numbers_are_4xx(admin_client: TestClient, method: str, path: str) -> None:
    body = {"expected": None} if path.endswith("/gold") else {"paused": True} if path.endswith("/pause") else None
    r = admin_client.request(method, path, json=body)
    assert r.status_code in (404, 422), (r.status_code, r.text[:300])


def test_a_lone_surrogate_in_a_gold_dimension_is_a_422(admin_client: TestClient, db: Database) -> None:
    with db.session(write=False) as s:
        item_id = s.scalar(select(Item.id))
    body = '{"expected": {"overall": {"kind": "tie"}, "\\ud800": {"kind": "tie"}}}'
    r = admin_client.put(
        f"/api/v1/projects/lim/items/{item_id}/gold", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text[:300]
    with db.session(write=False) as s:
        assert s.scalar(select(Item.is_gold).where(Item.id == item_id)) is False
