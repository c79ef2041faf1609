"""A live server (uvicorn in a thread), a worker thread, and headless Chromium driven by Playwright.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); Playwright never downloads a browser.
Without Playwright or Chromium the browser tests fail in CI and skip elsewhere (tests/browser.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.config import ROOT
from tests.browser import chromium, serve
from tests.training.conftest import served, tiny_model  # noqa: F401  (the loop test trains the tiny model)

ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    # Module-scoped: Playwright's sync API keeps an event loop running on this thread while it is open, and
    # asyncio.run() in later tests (the generation and snapshot jobs) would refuse to start.
    with chromium() as browser:
        yield browser


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    """The app served over real HTTP on a free local port, with a worker thread beside it."""
    from app.jobs.runner import run_worker

    with serve(app) as url:
        stop = threading.Event()
        worker = threading.Thread(
            target=run_worker, args=(app.state.db,), kwargs={"poll_s": 0.2, "stop": stop}, daemon=True
        )
        worker.start()
        yield url
        stop.set()
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
