"""Times show in the viewer's time zone and language; a lease's end as "in 30 minutes"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from app.db import Database
from app.models import Judgment
from tests.factories import make_item, make_judgment, make_project, make_user

# Late evening in UTC: already the next day in Shanghai, mid-afternoon in New York.
STORED = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)


@pytest.fixture
def seeded(db: Database) -> None:
    with db.session() as s:
        user = make_user(s, "tz-ann")
        project = make_project(s, "tz", k=2, overlap=1, members=[user], gold_share=0.0)
        judged = make_item(s, project, "an item judged long ago")
        make_item(s, project, "an item to judge now")
        judgment = make_judgment(s, judged, user, {"overall": ("preference", 0, 1)})
        s.execute(update(Judgment).where(Judgment.id == judgment.id).values(updated_at=STORED))
        s.commit()


@pytest.fixture
def viewer(playwright_browser: Any) -> Iterator[Any]:
    """viewer(timezone, locale): a desktop page in a context with that time zone and browser language."""
    contexts: list[Any] = []

    def open_page(timezone_id: str, locale: str) -> Any:
        context = playwright_browser.new_context(
            viewport={"width": 1280, "height": 900}, timezone_id=timezone_id, locale=locale
        )
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def _clock(local: datetime, locale: str) -> str:
    """The hour and minute as the locale writes them (24-hour "04:30" in Chinese, "3:30" before PM in English)."""
    if locale.startswith("zh"):
        return f"{local.hour:02d}:{local.minute:02d}"
    return f"{local.hour % 12 or 12}:{local.minute:02d}"


@pytest.mark.parametrize(
    ("timezone_id", "locale", "relative"),
    [("Asia/Shanghai", "zh-CN", r"(\d+)\s*分钟后"), ("America/New_York", "en-US", r"in (\d+) minutes")],
)
def test_times_are_local_and_the_lease_end_is_relative(
    viewer: Any, signed_in: Any, seeded: None, shots: Any, timezone_id: str, locale: str, relative: str
) -> None:
    page = viewer(timezone_id, locale)
    base = signed_in(page, "tz-ann")

    page.goto(f"{base}/projects/tz/judgments")
    stamp = page.locator("main table time").first
    assert stamp.get_attribute("datetime") == "2026-01-15T20:30:00Z"
    local = STORED.astimezone(ZoneInfo(timezone_id))
    page.wait_for_function("el => !el.textContent.includes('UTC')", arg=stamp.element_handle())
    text = stamp.inner_text()
    assert _clock(local, locale) in text, text
    assert str(local.day) in text and str(local.year) in text, text
    assert "UTC" not in text
    assert _clock(local, locale) in (stamp.get_attribute("title") or "")  # the full local date-time
    shots(page, f"local-times-judgments-{locale}")

    page.goto(f"{base}/projects/tz/annotate")
    page.wait_for_selector("#annotate-panel[data-item]")
    lease = page.locator("#lease-note time")
    ends = datetime.fromisoformat((lease.get_attribute("datetime") or "").replace("Z", "+00:00"))
    minutes_left = (ends - datetime.now(UTC)).total_seconds() / 60
    page.wait_for_function("el => !el.textContent.includes('UTC')", arg=lease.element_handle())
    found = re.search(relative, lease.inner_text())
    assert found, lease.inner_text()
    assert abs(int(found.group(1)) - minutes_left) <= 1  # 30 minutes, the project's lease
    assert _clock(ends.astimezone(ZoneInfo(timezone_id)), locale) in (lease.get_attribute("title") or "")
    shots(page, f"local-times-lease-{locale}")


def test_the_server_text_is_utc_and_the_filter_escapes_nothing_it_did_not_make() -> None:
    """Without script the page still says when, in UTC; the element carries the instant for the script."""
    from app.templating import env

    html = env.from_string("{{ t|timeago }} {{ t|timeago('absolute') }} {{ none|timeago }}").render(t=STORED, none=None)
    assert html == (
        '<time datetime="2026-01-15T20:30:00Z" data-time="relative">2026-01-15 20:30 UTC</time> '
        '<time datetime="2026-01-15T20:30:00Z" data-time="absolute">2026-01-15 20:30 UTC</time> —'
    )
    with pytest.raises(ValueError, match="timeago style"):
        env.from_string("{{ t|timeago('<b>') }}").render(t=STORED)
