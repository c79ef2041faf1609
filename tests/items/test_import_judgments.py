"""Importing judgments made elsewhere: they count like submitted ones (agreement, export, tallies), every bad line
is reported with its number and nothing is written, the same file twice writes once, external annotators cannot
log in; the API, the page and the command."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.agreement.service import compute
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item, skip_assignment
from app.auth.service import authenticate, set_password
from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.export.filters import resolve
from app.export.rows import pair_rows
from app.export.schemas import ExportFilter
from app.items.importer import ImportFailed
from app.items.judgments import JudgmentImportResult, import_judgments
from app.models import (
    AnnotatorTally,
    Assignment,
    Candidate,
    Item,
    Judgment,
    Project,
    ProjectMember,
    User,
    Verdict,
)
from tests.annotation.helpers import prefer_first
from tests.factories import make_item, make_project, make_user

HELPFUL = [{"key": "helpful", "label": "Helpful"}]


def _jsonl(*records: Any) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def _project(db: Database, slug: str = "imp", *, k: int = 2, items: int = 3, **fields: Any) -> int:
    with db.session() as s:
        project = make_project(s, slug, k=k, overlap=3, dimensions=HELPFUL, **fields)
        for i in range(items):
            make_item(s, project, f"prompt {slug} {i}", external_id=f"q{i}")
        return project.id


def _import(db: Database, project_id: int, body: bytes, **options: Any) -> JudgmentImportResult:
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        return import_judgments(s, project=project, stream=io.BytesIO(body), **options)


def _count(db: Database, model: Any) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _export(db: Database, project_id: int) -> list[dict[str, Any]]:
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        rules = resolve(s, project=project, filters=ExportFilter(min_judgments=1, split="all"), key=b"k")
        return list(pair_rows(s, rules=rules))


def _pref(chosen: int, rejected: int, strength: int | None = None) -> dict[str, int]:
    return {"chosen": chosen, "rejected": rejected} | ({"strength": strength} if strength else {})


def test_strengths_round_trip_into_agreement_and_export(db: Database) -> None:
    project_id = _project(db, strength=True)
    lines = [
        {
            "item": f"q{i}",
            "annotator": name,
            "verdicts": {"overall": _pref(1, 0, 3 if name != "carol" else 1), "helpful": "tie"},
            "reason": "B is right",
            "seconds": 12.5,
            "created_at": "2025-05-01T12:00:00Z",
        }
        for i in range(3)
        for name in ("ann", "ben", "carol")
    ]
    result = _import(db, project_id, _jsonl(*lines))
    assert (result.judgments, result.items, result.lines) == (9, 3, 9)
    assert result.annotators_created == ["ann", "ben", "carol"] and not result.already_imported
    with db.session(write=False) as s:
        items = list(s.scalars(select(Item).where(Item.project_id == project_id).order_by(Item.id)))
        assert [(i.judgment_count, i.claims) for i in items] == [(3, 3)] * 3
        judgments = list(s.scalars(select(Judgment)))
        assert all(j.imported and j.seconds == 12.5 and j.reason == "B is right" for j in judgments)
        assert {j.created_at.year for j in judgments} == {2025}
        assignment = s.get(Assignment, judgments[0].assignment_id)
        assert assignment is not None and assignment.status == "submitted"
        canonical = s.scalars(
            select(Candidate.id).where(Candidate.item_id == assignment.item_id).order_by(Candidate.position)
        ).all()
        assert assignment.display_order == list(canonical)
        strengths = Counter(s.scalars(select(Verdict.strength).where(Verdict.dimension == "overall")))
        assert strengths == Counter({3: 6, 1: 3})
        users = list(s.scalars(select(User).where(User.username.in_(["ann", "ben", "carol"]))))
        assert all(u.external for u in users)
        tallies = s.scalars(select(AnnotatorTally.judged).where(AnnotatorTally.project_id == project_id)).all()
        assert sorted(tallies) == [3, 3, 3]
        members = s.scalar(select(func.count()).where(ProjectMember.project_id == project_id))
        assert members == 3
        project = s.get(Project, project_id)
        assert project is not None
        figures = compute(s, project=project, resamples=0)
    overall = next(d for d in figures.dimensions if d.dimension == "overall")
    assert overall.units == 3 and overall.percent_agreement == 1.0
    assert {a.annotator for a in figures.annotators} == {"ann", "ben", "carol"}
    rows = [r for r in _export(db, project_id) if r["meta"].get("dimension", "overall") == "overall"]
    assert len(rows) == 3
    assert all(r["chosen"] == "answer 1" and r["rejected"] == "answer 0" for r in rows)


def test_rankings_round_trip_on_a_rank_mode_project(db: Database) -> None:
    project_id = _project(db, "rank", k=3, items=2, ranking_mode="rank")
    ranking = {"ranking": [[2], [0, 1]], "much": [0]}
    lines = [
        {"item": f"q{i}", "annotator": name, "verdicts": {"overall": ranking, "helpful": ranking}}
        for i in range(2)
        for name in ("ann", "ben")
    ]
    assert _import(db, project_id, _jsonl(*lines)).judgments == 4
    with db.session(write=False) as s:
        stored = s.scalars(select(Verdict.ranking).where(Verdict.dimension == "overall")).all()
        by_position = dict(s.execute(select(Candidate.id, Candidate.position)).tuples().all())
        project = s.get(Project, project_id)
        assert project is not None
        figures = compute(s, project=project, resamples=0)
    assert len(stored) == 4
    assert all([[by_position[c] for c in tier] for tier in r["tiers"]] == [[2], [0, 1]] for r in stored)
    assert all(r["much"] == [0] for r in stored)
    overall = next(d for d in figures.dimensions if d.dimension == "overall")
    assert overall.units == 6  # 3 pairs of each item, every one rated by both
    rows = [r for r in _export(db, project_id) if r["meta"].get("dimension", "overall") == "overall"]
    assert sorted((r["chosen"], r["rejected"]) for r in rows) == [
        ("answer 2", "answer 0"),
        ("answer 2", "answer 0"),
        ("answer 2", "answer 1"),
        ("answer 2", "answer 1"),
    ]  # the tie of 0 and 1 is no chosen/rejected pair


def test_every_bad_line_is_reported_and_nothing_is_written(db: Database) -> None:
    project_id = _project(db, strength=True)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        make_item(s, project, "no candidates yet", candidates=[], external_id="empty")
    good = {"item": "q0", "annotator": "ann", "verdicts": {"overall": _pref(0, 1, 2), "helpful": "na"}}
    body = _jsonl(
        good,
        {"item": "nope", "annotator": "ann", "verdicts": {"overall": _pref(0, 1, 2), "helpful": "na"}},
        {"item": "q1", "annotator": "ann", "verdicts": {"overall": _pref(0, 2, 2), "helpful": "na"}},
        {"item": "q1", "annotator": "ben", "verdicts": {"overall": _pref(0, 1), "helpful": "na"}},
        good,
        '{"item": "q2",',
        {"item": "q2", "annotator": "ann", "verdicts": {"helpful": "tie"}},
        {"item": "q2", "annotator": "ben", "verdicts": {"overall": {"ranking": [[0], [1]]}, "helpful": "na"}},
        {"item": "q2", "annotator": "carol", "verdicts": {"overall": "na", "helpful": "na"}},
        {"item": "empty", "annotator": "ann", "verdicts": {"overall": "tie", "helpful": "na"}},
        {"item": "q2", "annotator": "two words", "verdicts": {"overall": "tie"}},
        {"item": "q2", "annotator": "dan", "verdicts": {"overall": "tie", "helpful": "tie", "polite": "tie"}},
    )
    with pytest.raises(ImportFailed) as failed:
        _import(db, project_id, body)
    errors = {e["line"]: e["message"] for e in failed.value.errors}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert "no item with id 'nope'" in errors[2]
    assert "position from 0 to 1" in errors[3]
    assert "how much better" in errors[4]
    assert "first on line 1" in errors[5]
    assert "bad JSON" in errors[6]
    assert "Missing verdicts for: overall" in errors[7]
    assert "does not rank" in errors[8]
    assert "overall: choose a candidate or tie" in errors[9]
    assert "no candidates" in errors[10]
    assert "without spaces" in errors[11]
    assert "Unknown dimensions: polite" in errors[12]
    assert "nothing was imported" in failed.value.detail["message"]
    assert (_count(db, Judgment), _count(db, Assignment), _count(db, Verdict), _count(db, User)) == (0, 0, 0, 0)


def test_strength_on_a_project_that_does_not_ask_and_a_ranking_missing_a_candidate(db: Database) -> None:
    project_id = _project(db, "rk", k=3, items=1, ranking_mode="rank")
    body = _jsonl(
        {"item": "q0", "annotator": "ann", "verdicts": {"overall": {"ranking": [[0], [1]]}, "helpful": "tie"}},
        {"item": "q0", "annotator": "ben", "verdicts": {"overall": _pref(0, 1), "helpful": "tie"}},
        {"item": "q0", "annotator": "cy", "verdicts": {"overall": {"ranking": [[0, 1, 2]], "much": [0]}}},
    )
    with pytest.raises(ImportFailed) as failed:
        _import(db, project_id, body)
    errors = {e["line"]: e["message"] for e in failed.value.errors}
    assert "orders every candidate" in errors[1]
    assert "send a ranking" in errors[2]
    assert "'much' lists gaps" in errors[3]


def test_the_same_file_again_writes_nothing_and_says_so(db: Database) -> None:
    project_id = _project(db)
    verdicts = {"overall": _pref(0, 1), "helpful": "tie"}
    body = _jsonl(*({"item": f"q{i}", "annotator": "ann", "verdicts": verdicts} for i in range(3)))
    first = _import(db, project_id, body)
    assert first.judgments == 3
    again = _import(db, project_id, body)
    assert again.already_imported and again.judgments == 0 and again.sha256 == first.sha256
    assert _count(db, Judgment) == 3
    with db.session(write=False) as s:
        assert s.scalar(select(func.sum(Item.judgment_count))) == 3


def test_an_annotator_who_already_judged_is_an_error_or_skipped(db: Database) -> None:
    project_id = _project(db, items=1)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        alice = make_user(s, "alice")
        s.add(ProjectMember(project_id=project_id, user_id=alice.id))
        task = assign_next_item(s, project=project, annotator=alice)
        assert task is not None
        submit_judgment(
            s,
            project=project,
            annotator=alice,
            assignment_id=task.assignment.id,
            submit_key="own-00001",
            data=prefer_first(task, project),
        )
    body = _jsonl(
        {"item": "q0", "annotator": "alice", "verdicts": {"overall": _pref(0, 1), "helpful": "tie"}},
        {"item": "q0", "annotator": "zed", "verdicts": {"overall": _pref(0, 1), "helpful": "tie"}},
    )
    with pytest.raises(ImportFailed) as failed:
        _import(db, project_id, body)
    assert "'alice' is an existing user" in failed.value.errors[0]["message"]
    assert failed.value.errors[0]["line"] == 1
    with pytest.raises(ImportFailed) as failed:
        _import(db, project_id, body, as_members=True)
    assert failed.value.errors == [{"line": 1, "message": "'alice' already judged item 'q0' (its current candidates)"}]
    result = _import(db, project_id, body, as_members=True, skip_existing=True)
    assert result.judgments == 1 and result.skipped_count == 1 and result.skipped[0]["line"] == 1
    assert result.annotators_created == ["zed"]
    with db.session(write=False) as s:
        item = s.scalar(select(Item).where(Item.project_id == project_id))
        assert item is not None and (item.judgment_count, item.claims) == (2, 2)


def test_as_members_imports_as_an_existing_user_and_makes_them_a_member(db: Database) -> None:
    project_id = _project(db, items=1)
    with db.session() as s:
        make_user(s, "bea")
    body = _jsonl({"item": "q0", "annotator": "bea", "verdicts": {"overall": "tie", "helpful": "tie"}})
    result = _import(db, project_id, body, as_members=True)
    assert result.annotators_matched == ["bea"] and result.annotators_created == []
    with db.session(write=False) as s:
        bea = s.scalar(select(User).where(User.username == "bea"))
        assert bea is not None and not bea.external
        assert s.scalar(select(Judgment.annotator_id)) == bea.id
        assert s.scalar(select(ProjectMember.id).where(ProjectMember.user_id == bea.id)) is not None


def test_a_dry_run_checks_and_writes_nothing(db: Database) -> None:
    project_id = _project(db, items=1)
    body = _jsonl({"item": "q0", "annotator": "ann", "verdicts": {"overall": _pref(1, 0), "helpful": "tie"}})
    result = _import(db, project_id, body, dry_run=True)
    assert result.dry_run and result.judgments == 1 and result.annotators_created == ["ann"]
    assert (_count(db, Judgment), _count(db, User)) == (0, 0)


def test_an_external_annotator_cannot_log_in(db: Database, settings: Settings, client: TestClient) -> None:
    project_id = _project(db, items=1)
    _import(
        db, project_id, _jsonl({"item": "q0", "annotator": "ext", "verdicts": {"overall": "tie", "helpful": "tie"}})
    )
    with db.session() as s:
        ext = s.scalar(select(User).where(User.username == "ext"))
        assert ext is not None and ext.external
        assert authenticate(s, username="ext", password="", ip="1.2.3.4", settings=settings) is None
        set_password(s, user=ext, password="password123")  # even with a real password
    with db.session() as s:
        assert authenticate(s, username="ext", password="password123", ip="1.2.3.4", settings=settings) is None
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post(
        "/login", data={"username": "ext", "password": "password123", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code != 303


def _admin_headers(db: Database, settings: Settings) -> dict[str, str]:
    from app.auth.service import create_api_token

    with db.session() as s:
        root = make_user(s, "root", role="admin")
        return {"Authorization": f"Bearer {create_api_token(s, user=root, scope='api', settings=settings)[1]}"}


def test_api_imports_a_jsonl_body_reports_bad_lines_and_refuses_a_second_time(
    db: Database, settings: Settings, client: TestClient
) -> None:
    _project(db, items=2)
    h = _admin_headers(db, settings) | {"Content-Type": "application/x-ndjson"}
    good = _jsonl(
        *({"item": f"q{i}", "annotator": "ann", "verdicts": {"overall": "tie", "helpful": "na"}} for i in range(2))
    )
    bad = _jsonl({"item": "q0", "annotator": "ann", "verdicts": {"overall": "tie"}}, {"item": "zz", "annotator": "b"})
    r = client.post("/api/v1/projects/imp/judgments/import", content=bad, headers=h)
    assert r.status_code == 422
    errors = r.json()["detail"]["errors"]
    assert [e["line"] for e in errors] == [1, 2] and "Missing verdicts for: helpful" in errors[0]["message"]
    assert _count(db, Judgment) == 0
    r = client.post("/api/v1/projects/imp/judgments/import?dry_run=true", content=good, headers=h)
    assert r.status_code == 200 and r.json()["dry_run"] and r.json()["judgments"] == 2 and _count(db, Judgment) == 0
    r = client.post("/api/v1/projects/imp/judgments/import", content=good, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["judgments"] == 2 and r.json()["annotators_created"] == ["ann"]
    files = {"file": ("old.jsonl", good, "application/octet-stream")}
    r = client.post("/api/v1/projects/imp/judgments/import", files=files, headers={"Authorization": h["Authorization"]})
    assert r.status_code == 200 and r.json()["already_imported"]
    assert _count(db, Judgment) == 2


def test_page_uploads_a_file_and_shows_the_count_or_the_errors(
    db: Database, client: TestClient, login_as: Callable[[User], str]
) -> None:
    _project(db, items=2)
    with db.session() as s:
        root = make_user(s, "root", role="admin")
    login_as(root)
    page = client.get("/projects/imp/judgments/import")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    assert 'href="/projects/imp/judgments/import"' in client.get("/projects/imp").text
    bad = _jsonl({"item": "q0", "annotator": "ann", "verdicts": {"overall": _pref(0, 5)}})
    r = client.post("/projects/imp/judgments/import", files={"file": ("bad.jsonl", bad, "application/octet-stream")})
    assert r.status_code == 422 and "position from 0 to 1" in r.text and "nothing was imported" in r.text
    good = _jsonl(
        *({"item": f"q{i}", "annotator": "ann", "verdicts": {"overall": "tie", "helpful": "na"}} for i in range(2))
    )
    r = client.post(
        "/projects/imp/judgments/import",
        files={"file": ("good.jsonl", good, "application/octet-stream")},
        data={"skip_existing": "1"},
    )
    assert r.status_code == 200 and "2 judgments" in r.text
    assert _count(db, Judgment) == 2


def test_the_command_imports_and_dry_runs(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        _project(db, items=1)
        file = tmp_path / "old.jsonl"
        file.write_bytes(_jsonl({"item": "q0", "annotator": "ann", "verdicts": {"overall": "tie", "helpful": "na"}}))
        runner = CliRunner()
        dry = runner.invoke(cli, ["import-judgments", "imp", str(file), "--dry-run"])
        assert dry.exit_code == 0 and "would import 1 judgments" in dry.output, dry.output
        assert _count(db, Judgment) == 0
        done = runner.invoke(cli, ["import-judgments", "imp", str(file)])
        assert done.exit_code == 0 and "imported 1 judgments" in done.output, done.output
        assert _count(db, Judgment) == 1
        file.write_bytes(_jsonl({"item": "q9", "annotator": "ann", "verdicts": {"overall": "tie"}}))
        bad = runner.invoke(cli, ["import-judgments", "imp", str(file)])
        assert bad.exit_code == 1 and "line 1" in bad.output and "no item with id 'q9'" in bad.output
    finally:
        get_settings.cache_clear()


def test_a_lease_is_refused_and_a_skipped_item_becomes_the_judged_assignment(db: Database) -> None:
    project_id = _project(db, items=1)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        bea = make_user(s, "bea")
        s.add(ProjectMember(project_id=project_id, user_id=bea.id))
        task = assign_next_item(s, project=project, annotator=bea)
        assert task is not None
        assignment_id = task.assignment.id
    body = _jsonl({"item": "q0", "annotator": "bea", "verdicts": {"overall": _pref(1, 0), "helpful": "tie"}})
    with pytest.raises(ImportFailed) as failed:
        _import(db, project_id, body, as_members=True)
    assert failed.value.errors == [{"line": 1, "message": "'bea' is judging item 'q0' (its current candidates)"}]
    with db.session() as s:
        project = s.get(Project, project_id)
        annotator = s.get(User, bea.id)
        assert project is not None and annotator is not None
        skip_assignment(s, project=project, annotator=annotator, assignment_id=assignment_id, reason="later")
    assert _import(db, project_id, body, as_members=True).judgments == 1
    with db.session(write=False) as s:
        (assignment,) = s.scalars(select(Assignment)).all()
        judgment = s.scalar(select(Judgment))
        item = s.scalar(select(Item))
        assert assignment.id == assignment_id and assignment.status == "submitted" and assignment.skip_reason is None
        assert judgment is not None and judgment.assignment_id == assignment_id
        assert item is not None and (item.claims, item.judgment_count) == (1, 1)


def test_position_figures_leave_imported_judgments_out(db: Database) -> None:
    # Always candidate 0, stored in canonical order: read as shown, that would be "always the left one".
    project_id = _project(db, "pos", items=25)
    verdicts = {"overall": _pref(0, 1), "helpful": "tie"}
    _import(db, project_id, _jsonl(*({"item": f"q{i}", "annotator": "ann", "verdicts": verdicts} for i in range(25))))
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        (ann,) = compute(s, project=project, resamples=0).annotators
    assert ann.judgments == 25
    assert (ann.left_judgments, ann.left_choice_rate, ann.position_bias) == (0, None, False)
