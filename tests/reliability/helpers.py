"""Small helpers shared by the fault tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

# PostgreSQL-only tests: parametrize the session's ``backend`` fixture to "postgresql" alone. Without
# PREFSTUDIO_TEST_POSTGRES_URL they skip locally; under CI=true a missing PostgreSQL fails (tests/conftest.py).
postgres_only = [pytest.mark.postgres_only, pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]


def wait_for(condition: Callable[[], object], *, timeout: float = 60, what: str = "condition") -> None:
    """Poll ``condition`` every 50 ms until it is true; fail (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
