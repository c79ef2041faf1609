"""The dashboard's process-local caches: the parsed cache row, the rendered HTML of its heavy sections, and a
large project's recent fingerprint."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import Markup

from app.agreement import cache
from app.agreement.router import RENDERED_SECTIONS
from app.agreement.tasks import refresh_stale_figures
from app.db import Database
from app.models import User
from tests.agreement.test_cache import _cache, _judge_one_more
from tests.agreement.test_service import ITEMS, _annotate, noisy, truthful
from tests.conftest import login
from tests.factories import make_user

URL = "/projects/agr/agreement"


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    project_id = _annotate(db, {"a": truthful, "b": truthful, "n": noisy})
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        s.expunge(admin)
    return {"project_id": project_id, "admin": admin}


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every project counts as large: stale figures are shown from the cache row, not computed on the spot (and
    the fingerprint is taken on every view, as for a small one)."""
    monkeypatch.setattr(cache, "INLINE_JUDGMENTS", 0)
    monkeypatch.setattr(cache, "FINGERPRINT_TTL", 0.0)


def _version(db: Database, project_id: int) -> cache.CacheVersion:
    cached = _cache(db, project_id)
    assert cached is not None
    return (project_id, cached.computed_at, cached.source)


def _tokens(page: str) -> set[str]:
    """The CSRF tokens of the annotator table's pause forms."""
    table = page.split("<h2>Annotators</h2>", 1)[1]
    return set(re.findall(r'name="csrf_token" value="([^"]+)"', table))


def test_the_second_view_serves_the_cached_sections(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    refresh_stale_figures(db)
    login_as(world["admin"])
    first = client.get(URL)
    assert first.status_code == 200 and '<table class="heatmap" id="agreement-cohen">' in first.text
    version = _version(db, world["project_id"])
    assert (
        RENDERED_SECTIONS.keys() == [(version, "en")] and RENDERED_SECTIONS.misses == 1 and RENDERED_SECTIONS.hits == 0
    )
    assert cache.PARSED_FIGURES.keys() == [version]

    second = client.get(URL)
    assert RENDERED_SECTIONS.hits == 1 and cache.PARSED_FIGURES.hits == 1
    assert second.text == first.text

    # What the page shows is the cache's: doctor the entry and the page follows.
    sections = RENDERED_SECTIONS.get((version, "en"))
    assert sections is not None and set(sections) == {"dimensions", "timeline", "heatmap", "conflicts"}
    RENDERED_SECTIONS.put((version, "en"), {**sections, "heatmap": Markup("<p>from the cache</p>")})
    third = client.get(URL)
    assert "<p>from the cache</p>" in third.text and '<table class="heatmap" id="agreement-cohen">' not in third.text


def test_cached_and_uncached_renders_are_identical(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    refresh_stale_figures(db)
    login_as(world["admin"])
    for headers in ({}, {"HX-Request": "true"}):
        RENDERED_SECTIONS.clear()
        cache.PARSED_FIGURES.clear()
        uncached = client.get(URL, headers=headers).text
        cached = client.get(URL, headers=headers).text
        assert RENDERED_SECTIONS.hits == 1 and RENDERED_SECTIONS.misses == 1
        assert cached == uncached
    assert "<html" in client.get(URL).text and "<html" not in cached


def test_new_judgments_and_a_refreshed_row_change_the_page(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str], large: None
) -> None:
    refresh_stale_figures(db)
    login_as(world["admin"])
    before = client.get(URL).text
    old = _version(db, world["project_id"])
    assert f"total {3 * ITEMS}</p>" in before  # the timeline, a cached section

    # Stale: the old figures (and their cached sections) are shown while the worker recomputes.
    _judge_one_more(db, world["project_id"])
    stale = client.get(URL).text
    assert "refreshing…" in stale and "refreshing…" not in before
    assert RENDERED_SECTIONS.hits == 1 and cache.PARSED_FIGURES.hits == 1
    assert f"total {3 * ITEMS}</p>" in stale and "<td>late</td>" not in stale

    assert refresh_stale_figures(db) == ["agr"]
    new = _version(db, world["project_id"])
    assert new != old
    after = client.get(URL).text
    assert RENDERED_SECTIONS.misses == 2 and RENDERED_SECTIONS.hits == 1
    assert RENDERED_SECTIONS.keys() == [(old, "en"), (new, "en")] and cache.PARSED_FIGURES.keys() == [old, new]
    assert f"total {3 * ITEMS + 1}</p>" in after and "refreshing…" not in after
    assert "<td>late</td>" in after  # the annotator table too


def test_each_language_gets_its_own_entry(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    refresh_stale_figures(db)
    login_as(world["admin"])
    english = client.get(URL).text
    chinese = client.get(URL, headers={"Accept-Language": "zh-CN"}).text
    version = _version(db, world["project_id"])
    assert RENDERED_SECTIONS.keys() == [(version, "en"), (version, "zh")]
    assert RENDERED_SECTIONS.misses == 2 and RENDERED_SECTIONS.hits == 0
    assert "<h2>Per dimension</h2>" in english and "<h2>各维度</h2>" in chinese
    assert "Per dimension" not in chinese and "各维度" not in english
    again = client.get(URL).text
    assert RENDERED_SECTIONS.hits == 1 and again == english


def test_the_annotator_table_is_rendered_per_session(
    client: TestClient,
    other_client: TestClient,
    db: Database,
    world: dict[str, Any],
    login_as: Callable[[User], str],
) -> None:
    refresh_stale_figures(db)
    mine = login_as(world["admin"])
    theirs = login(other_client, world["admin"].username)
    assert mine != theirs
    page = client.get(URL).text
    other = other_client.get(URL).text
    assert RENDERED_SECTIONS.hits == 1  # the second session got the first one's sections
    assert _tokens(page) == {mine} and _tokens(other) == {theirs}
    assert page.replace(mine, theirs).split("<h2>Annotators</h2>")[0] == other.split("<h2>Annotators</h2>")[0]
    (sections,) = [RENDERED_SECTIONS.get(key) for key in RENDERED_SECTIONS.keys()]
    assert sections is not None
    for html in sections.values():
        assert "csrf_token" not in html and mine not in html and theirs not in html


def test_figures_computed_on_the_spot_are_not_cached(
    client: TestClient, db: Database, world: dict[str, Any], login_as: Callable[[User], str]
) -> None:
    login_as(world["admin"])
    page = client.get(URL).text
    assert _cache(db, world["project_id"]) is None and '<table class="heatmap" id="agreement-cohen">' in page
    assert RENDERED_SECTIONS.keys() == [] and cache.PARSED_FIGURES.keys() == []
    client.get(URL)
    assert RENDERED_SECTIONS.keys() == [] and RENDERED_SECTIONS.hits == RENDERED_SECTIONS.misses == 0


def test_a_large_projects_fingerprint_serves_views_for_a_few_seconds(
    client: TestClient,
    db: Database,
    world: dict[str, Any],
    login_as: Callable[[User], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "INLINE_JUDGMENTS", 0)
    monkeypatch.setattr(cache, "FINGERPRINT_TTL", 3600.0)
    refresh_stale_figures(db)
    login_as(world["admin"])
    assert "refreshing…" not in client.get(URL).text
    assert len(cache.RECENT_FINGERPRINTS) == 1
    _judge_one_more(db, world["project_id"])
    assert "refreshing…" not in client.get(URL).text  # the fingerprint of the first view, within its time
    assert cache.RECENT_FINGERPRINTS.hits == 1


def test_a_large_projects_fingerprint_is_taken_again_when_its_time_is_up(
    client: TestClient,
    db: Database,
    world: dict[str, Any],
    login_as: Callable[[User], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "INLINE_JUDGMENTS", 0)
    monkeypatch.setattr(cache, "FINGERPRINT_TTL", 0.05)
    refresh_stale_figures(db)
    login_as(world["admin"])
    assert "refreshing…" not in client.get(URL).text
    _judge_one_more(db, world["project_id"])
    time.sleep(0.1)  # the first view's fingerprint has expired
    assert "refreshing…" in client.get(URL).text
    assert cache.RECENT_FINGERPRINTS.hits == 0


def test_a_small_projects_fingerprint_is_taken_on_every_view(
    client: TestClient,
    db: Database,
    world: dict[str, Any],
    login_as: Callable[[User], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "FINGERPRINT_TTL", 3600.0)
    login_as(world["admin"])
    assert f"total {3 * ITEMS}</p>" in client.get(URL).text
    _judge_one_more(db, world["project_id"])
    assert f"total {3 * ITEMS + 1}</p>" in client.get(URL).text  # computed on the spot, at once
    assert len(cache.RECENT_FINGERPRINTS) == 0 and cache.RECENT_FINGERPRINTS.hits == 0


def test_a_server_process_does_not_load_the_statistics_libraries(tmp_path: Any) -> None:
    """The web server serves stored figures: statsmodels, scikit-learn, krippendorff (and the SciPy and pandas
    they bring, 190 MB a process) are loaded only where figures are computed, not by the app or the export."""
    import subprocess
    import sys

    heavy = ("sklearn", "statsmodels", "krippendorff", "scipy", "pandas")
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from app.config import Settings\n"
        "from app.main import create_app\n"
        "import app.export.service, app.export.stream, app.cli\n"
        f"settings = Settings(environment='dev', database_url='sqlite:///{tmp_path}/app.db', secret_key='x' * 40)\n"
        "with TestClient(create_app(settings)) as client:\n"
        "    assert client.get('/healthz').status_code == 200\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
        "from app.agreement import stats\n"
        "import numpy as np\n"
        "stats.alpha(np.array([[0.0, 1.0], [0.0, 1.0]]))\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.strip().splitlines()[-2:]
    assert before == "[]"
    assert "krippendorff" in after  # computing a figure loads its library
