"""Agreement figures from real judgments with planted behaviour, and the JSON endpoint."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.agreement import service as agreement
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Project, ProjectMember, User
from tests.factories import make_items, make_project, make_user

ITEMS = 60

Rater = Callable[[int, list[int], random.Random], int]  # (item id, candidate ids shown, rng) → chosen id


def truthful(item_id: int, shown: list[int], rng: random.Random) -> int:
    canonical = sorted(shown)
    return canonical[item_id % 2]  # the "better" answer alternates between the two canonical positions


def noisy(item_id: int, shown: list[int], rng: random.Random) -> int:
    # Chosen from the canonical order, so the seeded draws do not depend on the page's (unseeded) shuffle.
    return rng.choice(sorted(shown))


def left_clicker(item_id: int, shown: list[int], rng: random.Random) -> int:
    return shown[0]


def _annotate(db: Database, raters: dict[str, Rater]) -> int:
    rng = random.Random(5)
    # The queue shuffles each page's order with the module's generator: seeded, so that a truthful rater's left-choice
    # rate (and with it the position-bias test of the outlier flag) is the same on every run, not a 1-in-100 flag.
    random.seed(11)
    with db.session() as s:
        users = {name: make_user(s, name) for name in raters}
        project = make_project(s, "agr", k=2, overlap=len(raters), members=list(users.values()))
        make_items(s, project, ITEMS)
        project_id = project.id
        for name, rater in raters.items():
            user = users[name]
            while (task := assign_next_item(s, project=project, annotator=user)) is not None:
                shown = [c.id for c in task.candidates]
                best = rater(task.item.id, shown, rng)
                worst = next(c for c in shown if c != best)
                verdicts = {
                    d: VerdictIn(kind="preference", chosen=best, rejected=worst) for d in dimension_keys(project)
                }
                verdicts["refusal"] = VerdictIn(kind="na")
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{name}-{task.assignment.id}-key",
                    data=JudgmentIn(verdicts=verdicts, seconds=3.0),
                )
    return project_id


def _figures(db: Database, project_id: int, resamples: int = 100) -> Any:
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        return agreement.compute(s, project=project, resamples=resamples)


def test_identical_raters_give_kappa_one(db: Database) -> None:
    out = _figures(db, _annotate(db, {"a": truthful, "b": truthful, "c": truthful}))
    overall = next(d for d in out.dimensions if d.dimension == "overall")
    assert overall.units == ITEMS and overall.fleiss_units == ITEMS
    assert overall.fleiss_kappa == pytest.approx(1.0) and overall.alpha == pytest.approx(1.0)
    assert overall.percent_agreement == 1.0 and overall.meaning == "almost perfect"
    assert all(p.kappa == pytest.approx(1.0) for p in out.pairs) and len(out.pairs) == 3
    refusal = next(d for d in out.dimensions if d.dimension == "refusal")
    assert refusal.units == 0 and refusal.fleiss_kappa is None  # n.a. is missing, not a category


def test_random_raters_are_near_zero(db: Database) -> None:
    out = _figures(db, _annotate(db, {"a": noisy, "b": noisy, "c": noisy}), resamples=200)
    overall = next(d for d in out.dimensions if d.dimension == "overall")
    assert overall.fleiss_kappa is not None and abs(overall.fleiss_kappa) < 0.3
    assert overall.fleiss_ci is not None and overall.fleiss_ci.low < 0.1 and overall.fleiss_ci.high > -0.1


def test_a_noisy_rater_is_flagged_and_a_left_clicker_shows_position_bias(db: Database) -> None:
    out = _figures(db, _annotate(db, {"a": truthful, "b": truthful, "c": truthful, "n": noisy, "l": left_clicker}))
    by_name = {a.annotator: a for a in out.annotators}
    assert by_name["n"].outlier and not by_name["a"].outlier
    assert by_name["l"].left_choice_rate == 1.0
    assert by_name["a"].left_choice_rate is not None and 0.25 < by_name["a"].left_choice_rate < 0.75
    assert by_name["a"].median_seconds == 3.0 and by_name["a"].judgments == ITEMS


def test_endpoint_matches_the_service_and_is_admin_only(client: TestClient, db: Database, settings: Settings) -> None:
    project_id = _annotate(db, {"a": truthful, "b": truthful, "n": noisy})
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        ann = s.query(User).filter_by(username="a").one()
        tokens = [create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (admin, ann)]
    r = client.get(
        "/api/v1/projects/agr/agreement?live=true&bootstrap=50", headers={"Authorization": f"Bearer {tokens[0]}"}
    )
    assert r.status_code == 200
    direct = _figures(db, project_id, resamples=50)
    assert r.json() == direct.model_dump(mode="json")
    assert (
        client.get("/api/v1/projects/agr/agreement", headers={"Authorization": f"Bearer {tokens[1]}"}).status_code
        == 403
    )


def test_dashboard_page(client: TestClient, db: Database, settings: Settings) -> None:
    _annotate(db, {"a": truthful, "b": truthful, "n": noisy})
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
    h = {"Authorization": f"Bearer {token}"}
    page = client.get("/projects/agr/agreement?sort=agreement", headers=h)
    assert page.status_code == 200
    assert "Fleiss κ" in page.text and "almost perfect" not in page.text.split("overall", 1)[0]
    assert 'class="heatmap"' in page.text and ">n<" in page.text and "outlier" in page.text
    # Sorted by agreement: the noisy annotator comes first.
    table = page.text.split("<h2>Annotators</h2>", 1)[1]
    assert table.index("<td>n</td>") < table.index("<td>a</td>")
    assert client.get("/projects/agr/agreement", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_members_without_judgments_are_listed_except_admins(db: Database) -> None:
    project_id = _annotate(db, {"a": truthful, "b": truthful})
    with db.session() as s:
        for user in (make_user(s, "newcomer"), make_user(s, "chief", role="admin")):
            s.add(ProjectMember(project_id=project_id, user_id=user.id))
    by_name = {a.annotator: a for a in _figures(db, project_id).annotators}
    assert set(by_name) == {"a", "b", "newcomer"}  # the admin member, who has not judged, is left out
    assert by_name["newcomer"].judgments == 0 and by_name["a"].judgments == ITEMS
