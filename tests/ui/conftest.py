"""Page tests in headless Chromium: one live server per test, one browser per module, a fresh browser context
(cookies, storage) per test.

The pages have no dialect branches, so these tests run on SQLite only; what the database does underneath is
tested on both backends by the service tests. Screenshots go to test-artifacts/screenshots/ (``shots``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import live_url, playwright_browser, shots  # noqa: F401  (fixtures shared with e2e)
from tests.factories import PASSWORD

HERE = "tests/ui/"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the SQLite run of each page test; drop its PostgreSQL twin."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        in_ui = HERE in str(item.path).replace("\\", "/")
        (drop if in_ui and params.get("backend") == "postgresql" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def page(playwright_browser: Any) -> Iterator[Any]:  # noqa: F811
    """A desktop-sized page in a fresh context (no cookies, empty localStorage)."""
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def phone(playwright_browser: Any) -> Iterator[Any]:  # noqa: F811
    """A phone-sized touch page (390 × 844, touch events, coarse pointer)."""
    context = playwright_browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2
    )
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form and wait until the browser has left /login."""
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


@pytest.fixture
def signed_in(live_url: str) -> Callable[[Any, str], str]:  # noqa: F811
    """signed_in(page, username) logs the page in on the live server and returns the server's base URL."""

    def _sign_in(tab: Any, username: str) -> str:
        sign_in(tab, live_url, username)
        return live_url

    return _sign_in
