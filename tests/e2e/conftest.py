"""A live server (uvicorn in a thread), a worker thread, and headless Chromium driven by Playwright.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); Playwright never downloads a browser.
Without Playwright or Chromium the browser tests fail in CI and skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.config import ROOT

CHROMIUM = os.environ.get("PREFSTUDIO_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def playwright_browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    """The app served over real HTTP on a free local port, with a worker thread beside it."""
    import uvicorn

    from app.jobs.runner import run_worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(app.state.db,), kwargs={"poll_s": 0.2, "stop": stop}, daemon=True
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    stop.set()
    server.should_exit = True
    thread.join(timeout=10)
    worker.join(timeout=30)


@pytest.fixture
def shots(backend: str) -> Any:
    """Save a full-page screenshot as a test artifact: shots(page, "name")."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = ARTIFACTS / f"{backend}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
