"""Snapshots to release, made as the app makes them: a judged project, ``create_snapshot`` and ``write_snapshot``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings, get_settings
from app.db import Database
from app.export import pseudonyms, snapshots
from app.export.schemas import ExportFilter, PartsWanted
from tests.factories import make_item, make_judgment, make_project, make_user

A = {"overall": ("preference", 0, 1)}
B = {"overall": ("preference", 1, 0)}
TIE = {"overall": ("tie", None, None)}


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line reads the test database and data directory."""
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    monkeypatch.setenv("PREFSTUDIO_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def judged(db: Database) -> int:
    """k = 2, three annotators: twelve items voted A or B by all three (text prompts, Chinese ones, chat prompts),
    and two items called a tie (the ties part). Returns the project's id."""
    with db.session() as s:
        users = [make_user(s, f"rel{i}") for i in range(3)]
        project = make_project(s, "rel", k=2, overlap=3, members=users, name="Release test")
        for i in range(12):
            prompt: Any = f"question {i}: why is the sky blue?"
            if i % 4 == 1:
                prompt = f"第{i}个问题：天空为什么是蓝色的？"
            elif i % 4 == 2:
                prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"ask {i}"}]
            item = make_item(s, project, prompt, candidates=[f"answer {i} A", f"answer {i} B"], external_id=f"x{i}")
            for user in users:
                make_judgment(s, item, user, A if i % 3 else B, reason=f"{user.username}: clearer ({i})")
        for i in range(2):
            item = make_item(s, project, f"level {i}", candidates=[f"same {i}", f"alike {i}"], external_id=f"t{i}")
            for user in users:
                make_judgment(s, item, user, TIE, reason="equal")
        return project.id


@pytest.fixture
def make_snapshot(db: Database, settings: Settings, judged: int) -> Callable[..., int]:
    """Record and write a snapshot (test share 0.5, so both splits have pairs; a ties part; other filter fields as
    given); returns its id."""

    def _make(
        fmt: str = "standard", *, write: bool = True, ties: bool = True, per_dimension: bool = False, **filters: Any
    ) -> int:
        from app.models import Project

        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        with db.session() as s:
            project = s.get(Project, judged)
            assert project is not None
            snapshot = snapshots.create_snapshot(
                s,
                project=project,
                filters=ExportFilter(format=fmt, test_share=0.5, **filters),
                name=f"{fmt} release",
                key=pseudonyms.pseudonym_key(Path(settings.data_dir)),
                created_by_id=None,
                enqueue=False,
                parts=PartsWanted(ties=ties, per_dimension=per_dimension),
            )
            snapshot_id = snapshot.id
        if write:
            assert snapshots.write_snapshot(db, snapshot_id=snapshot_id, settings=settings) == "ready"
        return snapshot_id

    return _make
