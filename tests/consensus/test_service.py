"""The stored fit: posteriors and reliabilities from real judgments, staleness, and what readers get."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.consensus import service, stats
from app.consensus.tasks import refresh_stale_fits
from app.db import Database
from app.jobs.runner import run_worker
from app.models import Item, Project
from tests.factories import make_item, make_items, make_judgment, make_project, make_user


def _world(db: Database) -> int:
    """Three annotators on 10 items (k = 2): the better candidate alternates; a and b name it, c the other."""
    with db.session() as s:
        users = [make_user(s, name) for name in ("a", "b", "c")]
        project = make_project(s, "cons", k=2, dimensions=[], members=users)
        for n, item in enumerate(make_items(s, project, 10)):
            for user in users:
                first = (n % 2 == 0) == (user.username != "c")
                make_judgment(s, item, user, {"overall": ("preference", 0, 1) if first else ("preference", 1, 0)})
        return project.id


def test_posteriors_fit_on_demand_and_are_cached(db: Database) -> None:
    project_id = _world(db)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        assert service.posteriors(s, project=project, dimension="overall", fit=False) is None
        assert service.annotator_reliability(s, project=project) is None
        fit = service.posteriors(s, project=project, dimension="overall")
        assert fit is not None
        item_ids = sorted(fit.items.tolist())
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        cached = service.posteriors(s, project=project, dimension="overall", fit=False)
        assert cached is not None and cached.source == fit.source
        p = cached.of(item_ids[0], (0, 1))
        assert p is not None and p[0] > 0.9
        assert cached.of(item_ids[0], (1, 0)) is None
        reliability = service.annotator_reliability(s, project=project)
        assert reliability is not None and len(reliability) == 3


def test_a_new_judgment_makes_the_fit_stale_and_the_worker_refits(db: Database) -> None:
    project_id = _world(db)
    assert refresh_stale_fits(db) == ["cons"]
    assert refresh_stale_fits(db) == []  # fresh: nothing to do
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        before = service.posteriors(s, project=project, dimension="overall", fit=False)
        assert before is not None and not service.is_stale(s, project=project)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        late = make_user(s, "late")
        item = make_item(s, project, "a late prompt")
        make_judgment(s, item, late, {"overall": ("preference", 1, 0)})
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        assert service.is_stale(s, project=project)
        stale = service.posteriors(s, project=project, dimension="overall", fit=False)
        assert stale is not None and stale.source == before.source  # a stale fit is served as it is
        assert service.annotator_reliability(s, project=project) is not None
    assert refresh_stale_fits(db) == ["cons"]
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        after = service.posteriors(s, project=project, dimension="overall", fit=False)
        assert after is not None and after.source != before.source
        assert after.of(item.id, (0, 1)) is not None  # the new item's pair has its one vote
        assert set(after.reliability) == set(before.reliability) | {late.id}


def test_the_worker_loop_refits(db: Database) -> None:
    project_id = _world(db)
    run_worker(db, once=True)
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None and not service.is_stale(s, project=project)


def test_gold_items_and_old_rounds_are_left_out(db: Database) -> None:
    project_id = _world(db)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        items = list(s.scalars(select(Item).where(Item.project_id == project_id).order_by(Item.id)))
        items[0].is_gold = True
        items[0].gold = {"overall": "A"}
        items[1].round = 1  # regenerated: its judgments belong to round 0
        expected = {i.id for i in items[2:]}
    with db.session() as s:  # the fit reads on connections of its own: what it reads is committed
        project = s.get(Project, project_id)
        assert project is not None
        fit = service.posteriors(s, project=project, dimension="overall")
        assert fit is not None
        assert set(fit.items.tolist()) == expected


def test_api_lists_reliabilities_per_dimension(
    client: TestClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = _world(db)
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
    h = {"Authorization": f"Bearer {token}"}
    # Never fitted, and small: fitted on the spot (a GET stores nothing); a bigger project waits for the worker.
    inline = client.get("/api/v1/projects/cons/consensus", headers=h)
    assert inline.status_code == 200 and [d["dimension"] for d in inline.json()["dimensions"]] == ["overall"]
    monkeypatch.setattr(service, "INLINE_JUDGMENTS", 0)
    r = client.get("/api/v1/projects/cons/consensus", headers=h)
    assert r.status_code == 503 and "worker" in r.json()["detail"]
    live = client.get("/api/v1/projects/cons/consensus?live=true", headers=h).json()
    assert [d["dimension"] for d in live["dimensions"]] == ["overall"]
    assert client.get("/api/v1/projects/cons/consensus", headers=h).status_code == 503  # live stores nothing
    refresh_stale_fits(db)
    body = client.get("/api/v1/projects/cons/consensus", headers=h).json()
    overall = body["dimensions"][0]
    assert overall["stale"] is False and overall["pairs"] == 10 and overall["labels"] == 30
    assert overall["source"] == live["dimensions"][0]["source"] and overall["fitted_at"]
    by_name = {a["annotator"]: a for a in overall["annotators"]}
    assert set(by_name) == {"a", "b", "c"}
    # c always names the other candidate: DS reads the swap (c's labels still inform), but c's reliability — the
    # chance of reporting the true preference — is about 0, and c is flagged below the threshold (10 labels < 20
    # would not be: this toy has only 10, so the flag waits).
    assert by_name["c"]["reliability"] < 0.1 < 0.9 < by_name["a"]["reliability"]
    assert not by_name["c"]["flagged"] and by_name["c"]["labels"] == 10
    assert body["flag_below"] == stats.FLAG_BELOW
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        reliability = service.annotator_reliability(s, project=project)
        assert reliability is not None and reliability[by_name["a"]["annotator_id"]] > 0.9


def test_a_project_without_judgments_fits_to_nothing(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "empty", k=4, ranking_mode="rank")
        make_items(s, project, 2)
        project_id = project.id
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        fit = service.posteriors(s, project=project, dimension="helpful")
        assert fit is not None and fit.reliability == {} and len(fit.keys) == 0
        assert fit.of(1, (0, 1)) is None
        assert service.posteriors(s, project=project, dimension="no-such-dimension") is None
