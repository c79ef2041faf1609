"""Cached agreement figures: the fingerprint, the worker's refresh, and the page and JSON that read the cache."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.agreement import cache
from app.agreement import service as agreement
from app.agreement.tasks import refresh_stale_figures
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs.runner import run_worker
from app.models import AgreementCache, Judgment, Project, ProjectMember, User, utcnow
from tests.agreement.test_service import ITEMS, _annotate, noisy, truthful
from tests.factories import make_user

SLUG = "agr"


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    project_id = _annotate(db, {"a": truthful, "b": truthful, "n": noisy})
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
    return {"project_id": project_id, "h": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every project counts as large: nothing is computed on the spot, only the worker computes (and the
    fingerprint is taken on every view, as for a small one)."""
    monkeypatch.setattr(cache, "INLINE_JUDGMENTS", 0)
    monkeypatch.setattr(cache, "FINGERPRINT_TTL", 0.0)


def _cache(db: Database, project_id: int) -> AgreementCache | None:
    with db.session(write=False) as s:
        cached = s.get(AgreementCache, project_id)
        if cached is not None:
            s.expunge(cached)
        return cached


def _judge_one_more(db: Database, project_id: int, name: str = "late") -> None:
    """A fourth annotator judges one item (A better on everything)."""
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        user = make_user(s, name)
        s.add(ProjectMember(project_id=project.id, user_id=user.id))
        project.overlap = 4
        s.flush()
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None
        a, b = sorted(c.id for c in task.candidates)
        submit_judgment(
            s,
            project=project,
            annotator=user,
            assignment_id=task.assignment.id,
            submit_key=f"{name}-key-0001",
            data=JudgmentIn(
                verdicts={d: VerdictIn(kind="preference", chosen=a, rejected=b) for d in dimension_keys(project)},
                seconds=2.0,
            ),
        )


def _judgments(figures: dict[str, Any], name: str) -> int:
    return int(next(a["judgments"] for a in figures["annotators"] if a["annotator"] == name))


def test_worker_refreshes_only_when_the_fingerprint_moves(db: Database, world: dict[str, Any]) -> None:
    assert _cache(db, world["project_id"]) is None
    assert refresh_stale_figures(db) == [SLUG]
    first = _cache(db, world["project_id"])
    assert first is not None and first.source.startswith("v") and f"judgments={3 * ITEMS}" in first.source
    assert first.figures["dimensions"][0]["units"] == ITEMS and first.figures["resamples"] == agreement.RESAMPLES
    assert refresh_stale_figures(db) == []  # nothing changed: nothing recomputed
    assert _cache(db, world["project_id"]).computed_at == first.computed_at  # type: ignore[union-attr]

    _judge_one_more(db, world["project_id"])
    assert refresh_stale_figures(db) == [SLUG]
    second = _cache(db, world["project_id"])
    assert second is not None and second.source != first.source
    assert _judgments(second.figures, "late") == 1 and second.figures["overlap"] == 4


@pytest.mark.parametrize("change", ["edit", "pause", "gold", "gold answer", "rename"])
def test_what_the_figures_depend_on_moves_the_fingerprint(db: Database, world: dict[str, Any], change: str) -> None:
    with db.session() as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        before = cache.fingerprint(s, project=project).source
        if change == "edit":  # an edited judgment keeps the count but moves updated_at
            s.execute(update(Judgment).where(Judgment.id == 1).values(updated_at=utcnow() + timedelta(seconds=5)))
        elif change == "pause":
            s.execute(update(ProjectMember).where(ProjectMember.project_id == project.id).values(paused=True))
        elif change in ("gold", "gold answer"):
            from app.items.service import set_gold

            item_id = s.scalar(select(Judgment.item_id).limit(1))
            assert item_id is not None
            set_gold(s, project=project, item_id=item_id, expected={"overall": {"kind": "tie"}})
            if change == "gold answer":  # the same gold item, another expected answer
                before = cache.fingerprint(s, project=project).source
                set_gold(s, project=project, item_id=item_id, expected={"overall": {"kind": "either"}})
        else:
            s.execute(update(User).where(User.username == "a").values(username="alice"))
        after = cache.fingerprint(s, project=project).source
    assert after != before


def test_the_worker_loop_refreshes_between_jobs(db: Database, world: dict[str, Any]) -> None:
    run_worker(db, once=True)
    cached = _cache(db, world["project_id"])
    assert cached is not None and cached.compute_ms > 0


def test_page_and_json_read_the_cache(client: TestClient, db: Database, world: dict[str, Any]) -> None:
    refresh_stale_figures(db)
    # Doctor the cached figures (same fingerprint): what the page and the API show must come from the cache.
    cached = _cache(db, world["project_id"])
    assert cached is not None
    figures = cached.figures
    figures["dimensions"][0]["fleiss_kappa"] = 0.1234
    with db.session() as s:
        s.execute(update(AgreementCache).values(figures=figures))
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"])
    assert page.status_code == 200 and ">0.123<" in page.text and "As of" in page.text
    assert "refreshing" not in page.text and 'hx-trigger="every' not in page.text
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    assert data["dimensions"][0]["fleiss_kappa"] == 0.1234 and data["stale"] is False
    # live=true computes now and ignores the cache.
    live = client.get(f"/api/v1/projects/{SLUG}/agreement?live=true&bootstrap=0", headers=world["h"]).json()
    assert live["dimensions"][0]["fleiss_kappa"] != 0.1234


def _cells(page: str) -> dict[str, list[str]]:
    """Per dimension row of the page's first table: the text of its cells."""
    table = page.split('<table class="agreement" id="agreement-dimensions">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
        head = re.search(r'<th scope="row">([^<]+)</th>', row)
        if head:
            rows[head.group(1)] = [
                re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            ]
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def test_json_equals_the_page(client: TestClient, db: Database, world: dict[str, Any]) -> None:
    refresh_stale_figures(db)
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"]).text
    rows = _cells(page)
    assert list(rows) == [d["dimension"] for d in data["dimensions"]]
    for d in data["dimensions"]:
        # α first (the headline), then Fleiss' κ and its coverage (k = 2: no item-level columns).
        pairs, alpha, interval, meaning, kappa, coverage, agree, labels = rows[d["dimension"]]
        assert pairs.split()[0] == str(d["units"]) and meaning == d["meaning"]
        assert kappa == _fmt(d["fleiss_kappa"]) and alpha == _fmt(d["alpha"])
        assert coverage.startswith(f"on {d['fleiss_coverage'] * 100:.0f}% of pairs") if d["units"] else coverage == "—"
        assert agree == ("—" if d["percent_agreement"] is None else f"{d['percent_agreement'] * 100:.0f}%")
        if d["alpha_ci"]:
            assert interval == f"{_fmt(d['alpha_ci']['low'], 2)}–{_fmt(d['alpha_ci']['high'], 2)}"
        assert labels.endswith(f"{d['labels']['first']} / {d['labels']['second']} / {d['labels']['tie']}")
    for p in data["pairs"]:
        assert f">{_fmt(p['kappa'], 2)}<" in page
    table = page.split("<h2>Annotators</h2>", 1)[1]
    for person in data["annotators"]:
        assert f"<td>{person['annotator']}</td><td>{person['judgments']}</td>" in table
    # The time the page gives is the cache's.
    assert data["computed_at"][:16].replace("T", " ") in page


def test_stale_figures_are_shown_while_the_worker_refreshes(
    client: TestClient, db: Database, world: dict[str, Any], large: None
) -> None:
    refresh_stale_figures(db)
    _judge_one_more(db, world["project_id"])
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"])
    assert "refreshing…" in page.text and 'hx-trigger="every 5s"' in page.text
    assert "<td>late</td>" not in page.text  # the figures are the old ones
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    assert data["stale"] is True and "late" not in {a["annotator"] for a in data["annotators"]}
    # htmx polls the same URL and gets only the figures back.
    fragment = client.get(f"/projects/{SLUG}/agreement", headers={**world["h"], "HX-Request": "true"})
    assert '<div id="figures"' in fragment.text and "<html" not in fragment.text and "refreshing…" in fragment.text

    assert refresh_stale_figures(db) == [SLUG]
    fresh = client.get(f"/projects/{SLUG}/agreement", headers={**world["h"], "HX-Request": "true"})
    assert "refreshing" not in fresh.text and 'hx-trigger="every' not in fresh.text and "<td>late</td>" in fresh.text


def test_a_large_project_without_figures_asks_for_a_worker(
    client: TestClient, db: Database, world: dict[str, Any], large: None
) -> None:
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"])
    assert page.status_code == 200 and "Figures not computed yet" in page.text and "prefstudio worker" in page.text
    assert 'hx-trigger="every 5s"' in page.text
    r = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"])
    assert r.status_code == 503 and "worker" in r.json()["detail"]
    assert _cache(db, world["project_id"]) is None  # a GET computes nothing for a large project


def test_a_small_project_is_computed_on_the_spot(client: TestClient, db: Database, world: dict[str, Any]) -> None:
    assert _cache(db, world["project_id"]) is None
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    assert data["stale"] is False and data["dimensions"][0]["units"] == ITEMS
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"]).text
    assert "refreshing" not in page and _fmt(data["dimensions"][0]["fleiss_kappa"]) in page


def test_judgments_over_time_chart(client: TestClient, db: Database, world: dict[str, Any]) -> None:
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    assert data["timeline_unit"] == "hour" and sum(b["judgments"] for b in data["timeline"]) == 3 * ITEMS
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"]).text
    chart = page.split('<svg class="timeline"', 1)[1].split("</svg>", 1)[0]
    bars = re.findall(r"<title>([^<]+): (\d+)</title>", chart)
    assert sum(int(n) for _, n in bars) == 3 * ITEMS and len(bars) >= 1

    # Spread over ten days: one bar a day, empty days included, and the tallest bar is the busiest day.
    with db.session() as s:
        ids = list(s.scalars(select(Judgment.id).order_by(Judgment.id)))
        for n, judgment_id in enumerate(ids[:30]):
            when = utcnow() - timedelta(days=9 if n < 20 else 5)
            s.execute(update(Judgment).where(Judgment.id == judgment_id).values(created_at=when))
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    assert data["timeline_unit"] == "day" and len(data["timeline"]) == 10
    counts = [b["judgments"] for b in data["timeline"]]
    assert counts[0] == 20 and counts[4] == 10 and counts[-1] == 3 * ITEMS - 30 and counts[1] == 0
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"]).text
    chart = page.split('<svg class="timeline"', 1)[1].split("</svg>", 1)[0]
    heights = {t: float(h) for h, t in re.findall(r'height="([\d.]+)" fill="#2458d6"><title>([^:]+):', chart)}
    assert len(heights) == 3 and max(heights, key=heights.__getitem__) == data["timeline"][-1]["start"]
    assert "Judgments per day" in page


def test_label_distribution_bars(client: TestClient, db: Database, world: dict[str, Any]) -> None:
    data = client.get(f"/api/v1/projects/{SLUG}/agreement", headers=world["h"]).json()
    overall = data["dimensions"][0]["labels"]
    page = client.get(f"/projects/{SLUG}/agreement", headers=world["h"]).text
    assert f"<title>first better: {overall['first']}</title>" in page
    assert f"<title>second better: {overall['second']}</title>" in page
    assert overall["first"] + overall["second"] == 3 * ITEMS and overall["tie"] == 0
