"""Import: line-numbered errors, all or nothing, duplicates, CSV, chat prompts, API and page."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db import Database
from app.items.importer import CSV_CELL_CHARS, ImportFailed, import_items, prompt_hash
from app.models import Candidate, Item, Project, User
from tests.factories import make_project, make_user
from tests.support.inert import assert_inert


def _jsonl(*records: Any) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records).encode()


def _import(db: Database, body: bytes, *, k: int = 2, filename: str = "f.jsonl", slug: str = "imp") -> Any:
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == slug)) or make_project(s, slug, k=k)
        return import_items(s, project=project, stream=io.BytesIO(body), filename=filename)


def _count(db: Database, model: Any = Item) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_text_and_chat_with_and_without_candidates(db: Database) -> None:
    body = _jsonl(
        {"id": "a1", "prompt": "Hello?", "candidates": ["Hi!", {"text": "Hey.", "model": "m2", "seed": 3}]},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]},
        {"prompt": "No candidates yet", "meta": {"source": "forum"}},
    )
    result = _import(db, body)
    assert (result.created, result.ready, result.pending, result.lines) == (3, 1, 2, 3)
    with db.session(write=False) as s:
        items = {i.external_id or i.id: i for i in s.scalars(select(Item))}
        cands = list(s.scalars(select(Candidate).order_by(Candidate.position)))
    assert items["a1"].status == "ready" and [c.text for c in cands] == ["Hi!", "Hey."]
    assert [c.position for c in cands] == [0, 1] and cands[1].model == "m2" and cands[1].seed == 3
    chat = next(i for i in items.values() if isinstance(i.prompt, list))
    assert chat.status == "pending" and chat.prompt[1]["content"] == "你好"


def test_every_error_is_reported_with_its_line_and_nothing_is_written(db: Database) -> None:
    body = _jsonl(
        {"prompt": "fine line 1"},
        {"prompt": "fine line 2", "candidates": ["x", "y"]},
        '{"prompt": "broken json"',
        {"id": "no prompt"},
        {"prompt": "three candidates", "candidates": ["a", "b", "c"]},
        {"prompt": [{"role": "robot", "content": "hi"}]},
        {"prompt": "same answers", "candidates": ["same", "same"]},
        {"prompt": "", "candidates": []},
        {"prompt": "extra", "colour": "blue"},
    )
    with pytest.raises(ImportFailed) as failure:
        _import(db, body)
    lines = {e["line"]: e["message"] for e in failure.value.errors}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9]
    assert "bad JSON" in lines[3] and "'prompt' is missing" in lines[4] and "k = 2" in lines[5]
    assert "role" in lines[6] and "identical" in lines[7] and "non-empty" in lines[8] and "colour" in lines[9]
    assert _count(db) == 0 and _count(db, Candidate) == 0


def test_errors_after_a_full_batch_still_roll_everything_back(db: Database) -> None:
    body = _jsonl(*[{"prompt": f"p{i}", "candidates": ["a", "b"]} for i in range(2500)], "not json")
    with pytest.raises(ImportFailed) as failure:
        _import(db, body)
    assert failure.value.errors == [{"line": 2501, "message": failure.value.errors[0]["message"]}]
    assert _count(db) == 0 and _count(db, Candidate) == 0


def test_duplicates_are_reported_and_skipped(db: Database) -> None:
    first = _import(db, _jsonl({"id": "x", "prompt": "What is DPO?"}, {"prompt": "Second"}))
    assert first.created == 2
    again = _import(
        db,
        _jsonl(
            {"prompt": "  what   is dpo?  "},  # same prompt, other spacing and case
            {"id": "x", "prompt": "A new text"},  # same external id
            {"prompt": "Third"},
            {"prompt": "third"},  # duplicate within the file
        ),
    )
    assert again.created == 1
    assert sorted(d["line"] for d in again.duplicates) == [1, 2, 4]
    assert "line 3" in next(d["reason"] for d in again.duplicates if d["line"] == 4)
    assert _count(db) == 3
    assert prompt_hash("What is DPO?") == prompt_hash("what  is DPO?")


def test_csv_with_candidate_columns(db: Database) -> None:
    body = 'id,prompt,candidate_1,candidate_2,meta\nc1,"A, quoted prompt",yes,no,"{""t"": 1}"\nc2,Plain,,,\n'
    result = _import(db, body.encode(), filename="items.csv")
    assert (result.created, result.ready, result.pending) == (2, 1, 1)
    bad = "id,prompt,unknown\n1,x,y\n"
    with pytest.raises(ImportFailed) as failure:
        _import(db, bad.encode(), filename="more.csv")
    assert failure.value.errors[0]["line"] == 1 and "unknown" in failure.value.errors[0]["message"]


def test_csv_cells_as_long_as_a_jsonl_prompt_are_read(db: Database) -> None:
    long_prompt = "why " * 40_000  # 160,000 characters: past the csv module's default limit of 131,072
    answers = json.dumps(["a" * 150_000, "b" * 150_000]).replace('"', '""')
    result = _import(db, f'prompt,candidates\n{long_prompt},"{answers}"\n'.encode(), filename="long.csv")
    assert (result.created, result.ready) == (1, 1)
    with db.session(write=False) as s:
        assert s.scalar(select(Item.prompt)) == long_prompt
    huge = "x" * (CSV_CELL_CHARS + 1)
    with pytest.raises(ImportFailed) as failure:
        _import(db, f"prompt\nfine\n{huge}\n".encode(), filename="huge.csv")
    [error] = failure.value.errors
    assert (error["line"], error["message"]) == (3, f"a cell is longer than {CSV_CELL_CHARS:,} characters")
    assert _count(db) == 1  # nothing of the failed file


def test_api_import_reports_errors_as_json(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        make_project(s, "api", k=2)
    login_as(admin)
    ok = client.post(
        "/api/v1/projects/api/import",
        content=_jsonl({"prompt": "one"}, {"prompt": "two"}),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert ok.status_code == 201 and ok.json()["created"] == 2
    bad = client.post("/api/v1/projects/api/import", files={"file": ("x.jsonl", _jsonl({"prompt": "three"}, "{oops"))})
    assert bad.status_code == 422
    assert bad.json()["detail"]["errors"][0]["line"] == 2
    assert _count(db) == 2


def test_page_import_shows_result_and_errors(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        make_project(s, "pg", k=2)
    login_as(admin)
    r = client.post("/projects/pg/import", files={"file": ("a.jsonl", _jsonl({"prompt": "p1"}, {"prompt": "p1"}))})
    assert r.status_code == 200 and "Imported 1 items" in r.text and "line 2" in r.text
    r = client.post("/projects/pg/import", files={"file": ("b.jsonl", _jsonl({"prompt": "p9"}, {"nope": 1}))})
    assert r.status_code == 422 and "line 2" in r.text and "nothing was imported" in r.text
    assert _count(db) == 1


def test_untrusted_prompts_and_candidates_render_inert(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    payloads = [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        '<div hx-get="/logout" hx-trigger="load">x</div>',
        "<iframe src=//evil></iframe>",
    ]
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        make_project(s, "xss", k=2, guidelines="\n\n".join(payloads))
    _import(db, _jsonl({"id": "<b>id</b>", "prompt": "\n\n".join(payloads), "candidates": payloads[:2]}), slug="xss")
    login_as(admin)
    with db.session(write=False) as s:
        item_id = s.scalar(select(Item.id))
    for url in ("/projects/xss", "/projects/xss/items", f"/projects/xss/items/{item_id}"):
        page = client.get(url)
        assert page.status_code == 200
        assert_inert(page.text)
    assert "&lt;b&gt;id&lt;/b&gt;" in client.get("/projects/xss/items").text
