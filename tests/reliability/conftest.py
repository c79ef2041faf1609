"""Fixtures for the fault tests: the scriptable fake model server, real `prefstudio worker` processes, and a
live server with headless Chromium for the annotation page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.browser import chromium, serve
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def prefstudio_command() -> list[str]:
    """The installed ``prefstudio`` entry point of this virtualenv (as CI runs it)."""
    beside = Path(sys.executable).parent / "prefstudio"
    found = str(beside) if beside.exists() else shutil.which("prefstudio")
    assert found, "the prefstudio command is not installed (pip install -e .)"
    return [found]


@pytest.fixture
def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process that shares the test's database and snapshot folder."""
    return {
        **os.environ,
        "PREFSTUDIO_DATABASE_URL": settings.database_url,
        "PREFSTUDIO_ENVIRONMENT": "dev",
        "PREFSTUDIO_SECRET_KEY": settings.secret_key or "",
        "PREFSTUDIO_DATA_DIR": str(settings.data_dir),
    }


@pytest.fixture
def spawn(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a process with the worker environment (cwd: a scratch folder, so no .env is read); every one
    still alive at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def _spawn(args: list[str], *, log: str = "worker") -> subprocess.Popen[bytes]:
        out = open(tmp_path / f"{log}-{len(started)}.log", "wb")  # closed below: the child has its own copy
        process = subprocess.Popen(args, cwd=tmp_path, env=worker_env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        started.append(process)
        return process

    yield _spawn
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright: a failure in CI when missing, a skip elsewhere."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    """The app over real HTTP (uvicorn in a thread, a free local port)."""
    with serve(app) as url:
        yield url
