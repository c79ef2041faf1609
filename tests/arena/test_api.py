"""The arena over HTTP: making one, who may see what, blindness, and the leaderboard's figures."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.db import Database
from app.models import Project, User
from tests.arena.conftest import World, bearer, generate_planted, make_arena


def _switch(client: TestClient, login_as: Callable[[User], str], user: User) -> str:
    """Log ``client`` out, then in as ``user``."""
    client.cookies.clear()
    client.headers.pop("X-CSRF-Token", None)
    return login_as(user)


def _opened_arena(db: Database, world: World, *, prompts: int = 12, identical: frozenset[int] = frozenset()) -> str:
    arena_id = make_arena(db, world, snapshot_id=None, prompts="\n".join(f"prompt {i}" for i in range(prompts)))
    generate_planted(db, arena_id, identical=set(identical))
    from app.arena.service import open_arena

    with db.session() as s:
        assert open_arena(s, arena_id=arena_id)
        arena = s.get(Project, arena_id)
        assert arena is not None
        return arena.slug


def test_create_over_the_api(client: TestClient, db: Database, world: World, login_as: Callable[[User], str]) -> None:
    body = {"name": "Round one", "model_ids": world.model_ids, "snapshot_id": world.snapshot_id, "overlap": 2}
    assert client.post("/api/v1/projects/dpo/arenas", json=body).status_code == 401
    login_as(world.annotators[0])
    assert client.post("/api/v1/projects/dpo/arenas", json=body).status_code == 403
    _switch(client, login_as, world.admin)
    made = client.post("/api/v1/projects/dpo/arenas", json=body)
    assert made.status_code == 201, made.text
    out = made.json()
    assert out["state"] == "generating" and out["items"] == len(world.test_item_ids) and out["identical"] == 0
    assert [m["name"] for m in out["models"]] == ["sft-base", "dpo-r1"]
    listed = client.get("/api/v1/projects/dpo/arenas").json()
    assert [a["slug"] for a in listed] == [out["slug"]]
    empty = client.get(f"/api/v1/projects/{out['slug']}/leaderboard").json()  # still generating: no votes
    assert empty["judgments"] == 0 and all(d["ratings"] == [] and d["decision"] is None for d in empty["dimensions"])
    page = client.get(f"/projects/{out['slug']}/leaderboard")
    assert page.status_code == 200 and "No votes yet." in page.text
    bad = client.post(
        "/api/v1/projects/dpo/arenas", json={**body, "snapshot_id": None, "prompts": 'fine\n{"prompt": 1}\n'}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"]["errors"][0]["line"] == 2
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).where(Project.kind == "arena")) == 1


def test_leaderboard_access(client: TestClient, db: Database, world: World, login_as: Callable[[User], str]) -> None:
    slug = _opened_arena(db, world)
    url = f"/api/v1/projects/{slug}/leaderboard"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer("nonsense")).status_code == 401
    assert client.get(url, headers=bearer(world.tokens["other"])).status_code == 403
    assert client.get(url, headers=bearer(world.tokens["annotator_api"])).status_code == 403
    ok = client.get(url, headers=bearer(world.tokens["export"]))  # an export token of the parent
    assert ok.status_code == 200 and ok.json()["arena"] == slug
    assert client.get("/api/v1/projects/dpo/leaderboard", headers=bearer(world.tokens["export"])).status_code == 404
    login_as(world.annotators[0])
    assert client.get(f"/projects/{slug}/leaderboard").status_code in (403, 404)
    assert client.get("/projects/dpo/arenas").status_code in (403, 404)


def test_annotators_never_see_the_model(
    client: TestClient, db: Database, world: World, login_as: Callable[[User], str]
) -> None:
    slug = _opened_arena(db, world)
    for annotator in world.annotators:
        _switch(client, login_as, annotator)
        page = client.get(f"/projects/{slug}/annotate")
        assert page.status_code == 200
        for secret in ("sft-base", "dpo-r1", "served-", "tiny-sft"):
            assert secret not in page.text
        nxt = client.post(f"/api/v1/projects/{slug}/next").json()
        candidates = nxt["assignment"]["candidates"]
        assert all(c["model"] is None for c in candidates)


def _judge_all(db: Database, world: World, slug: str, prefer: Callable[[int, int, int], str]) -> set[bool]:
    """Every annotator judges every item; ``prefer(annotator, n, item_id)`` says "sft", "dpo" or "tie". Returns
    whether the display order was the canonical one, over all assignments."""
    random.seed(11)  # the queue's display order
    canonical = set()
    with db.session() as s:
        arena = s.scalar(select(Project).where(Project.slug == slug))
        assert arena is not None
        for a, annotator in enumerate(world.annotators):
            user = s.merge(annotator)
            n = 0
            while (task := assign_next_item(s, project=arena, annotator=user)) is not None:
                canonical.add([c.position for c in task.candidates] == sorted(c.position for c in task.candidates))
                by_model = {c.model_id: c.id for c in task.candidates}
                sft, dpo = by_model[world.model_ids[0]], by_model[world.model_ids[1]]
                choice = prefer(a, n, task.item.id)
                verdict = (
                    VerdictIn(kind="tie")
                    if choice == "tie"
                    else VerdictIn(kind="preference", chosen=dpo, rejected=sft)
                    if choice == "dpo"
                    else VerdictIn(kind="preference", chosen=sft, rejected=dpo)
                )
                verdicts = dict.fromkeys(["overall", *arena.dimension_keys], verdict)
                submit_judgment(
                    s,
                    project=arena,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{a}-{n}",
                    data=JudgmentIn(verdicts=verdicts),
                )
                n += 1
    return canonical


def test_leaderboard_figures_equal_an_independent_count(
    client: TestClient, db: Database, world: World, login_as: Callable[[User], str]
) -> None:
    slug = _opened_arena(db, world, prompts=14, identical=frozenset({3, 8}))  # 12 asked, 2 identical
    # ann0 prefers the DPO model always, ann1 on every other item, ann2 says tie.
    shown = _judge_all(db, world, slug, lambda a, n, _: ["dpo", "dpo" if n % 2 == 0 else "sft", "tie"][a])
    assert shown == {True, False}  # each assignment has its own display order
    login_as(world.admin)
    board = client.get(f"/api/v1/projects/{slug}/leaderboard").json()
    assert board["judgments"] == 36 and board["identical"] == 2
    overall = next(d for d in board["dimensions"] if d["dimension"] == "overall")
    (pair,) = overall["pairs"]
    # Votes: dpo wins 12 + 6, sft wins 6, ties 12 asked + 2 identical prompts × r = 3.
    assert (pair["a"], pair["b"]) == ("sft-base", "dpo-r1")
    assert (pair["wins"], pair["losses"], pair["ties"]) == (6, 18, 18)
    assert pair["win_rate"] == pytest.approx((6 + 9) / 42)
    ratings = {r["model"]: r["rating"] for r in overall["ratings"]}
    # Two models: the Bradley–Terry MLE has θ_dpo − θ_sft = ln((18 + 9) / (6 + 9)) (ties half a win each way).
    expected = 400 * math.log10(27 / 15)
    assert ratings["dpo-r1"] - ratings["sft-base"] == pytest.approx(expected, abs=1.0)
    assert ratings["dpo-r1"] + ratings["sft-base"] == pytest.approx(2000)
    assert [r["model"] for r in overall["ratings"]] == ["dpo-r1", "sft-base"]
    assert overall["decision"]["a"] == "sft-base" and overall["decision"]["decided"] in (True, False)
    assert pair["low"] < pair["win_rate"] < pair["high"]
    decided = overall["decision"]["decided"]
    assert decided == (pair["high"] < 0.5 or pair["low"] > 0.5)
    if not decided:
        assert overall["decision"]["votes_needed"] > 0
    # The pages: the leaderboard names the models for admins; the parent's list shows the state.
    page = client.get(f"/projects/{slug}/leaderboard")
    assert page.status_code == 200 and "dpo-r1" in page.text and "sft-base" in page.text
    listing = client.get("/projects/dpo/arenas")
    assert listing.status_code == 200 and f'data-arena="{slug}"' in listing.text
    assert ("decided" if decided else "annotating") in listing.text.split(f'data-arena="{slug}"')[1].split("</tr>")[0]


def test_create_from_the_page_needs_csrf(
    client: TestClient, db: Database, world: World, login_as: Callable[[User], str]
) -> None:
    token = login_as(world.admin)
    assert 'href="/projects/dpo/arenas" id="arena-link"' in client.get("/projects/dpo").text
    form = {
        "name": "From the page",
        "model_ids": [str(i) for i in world.model_ids],
        "source": "imported",
        "prompts": "One?\nTwo?",
        "overlap": "2",
    }
    client.headers.pop("X-CSRF-Token")
    assert client.post("/projects/dpo/arenas", data=form, follow_redirects=False).status_code == 403
    made = client.post("/projects/dpo/arenas", data={**form, "csrf_token": token}, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = client.get("/projects/dpo/arenas")
    assert "From the page" in page.text and "generating" in page.text
    again = client.post("/projects/dpo/arenas", data={**form, "csrf_token": token, "model_ids": ["1"]})
    assert again.status_code == 422 and 'id="arena-error"' in again.text


def test_reading_the_list_opens_a_generated_arena(
    client: TestClient, db: Database, world: World, login_as: Callable[[User], str]
) -> None:
    arena_id = make_arena(db, world, snapshot_id=None, prompts="a?\nb?\nc?")
    generate_planted(db, arena_id, identical={1})
    login_as(world.admin)
    (listed,) = client.get("/api/v1/projects/dpo/arenas").json()
    assert (listed["state"], listed["items"], listed["identical"]) == ("annotating", 2, 1)
    # Its annotators are in now, and the queue serves them.
    _switch(client, login_as, world.annotators[1])
    assert any(p["slug"] == listed["slug"] for p in client.get("/api/v1/projects").json())
    assert client.post(f"/api/v1/projects/{listed['slug']}/next").json()["assignment"] is not None
