"""Strength, rankings and agreement in export rows: signed strengths toward the exported direction, the
agreement of a pair against that of its item, and the meta keys only projects with strength or rankings get."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Candidate, Item, Judgment, Verdict
from tests.factories import make_item, make_judgment, make_project, make_user

PREF = "preference"
STRENGTH_KEYS = {"strength", "mean_strength", "strength_margin"}


def _set(session: Any, judgment: Judgment, dimension: str = "overall", **values: Any) -> None:
    """Give a stored verdict its strength or ranking (the factory writes kind, chosen and rejected only)."""
    verdict = session.scalars(
        select(Verdict).where(Verdict.judgment_id == judgment.id, Verdict.dimension == dimension)
    ).one()
    for name, value in values.items():
        setattr(verdict, name, value)
    session.flush()


def _ids(session: Any, item: Item) -> list[int]:
    return list(session.scalars(select(Candidate.id).where(Candidate.item_id == item.id).order_by(Candidate.position)))


@pytest.fixture
def graded(db: Database, settings: Settings) -> dict[str, Any]:
    """Three projects of three annotators (u1, u2, u3), an admin token for their exports.

    str2 (k = 2, strength asked): item "a": u1 A≻B 3, u2 A≻B 1, u3 B≻A 2 → A≻B, strengths [3, 1, -2];
    item "b": u1 B≻A 3, u2 B≻A 2, u3 tie → B≻A (the second candidate), strengths [3, 2, 0].
    bw4 (k = 4, best and worst): u1, u2 best A worst D; u3 best B worst C → pair (B, C) has one vote (u3).
    rank4 (k = 4, rank mode): u1 A ≫ B > C > D ("much" after A); u2 A > B = C > D.
    """
    with db.session() as s:
        users = [make_user(s, f"grader{n}") for n in (1, 2, 3)]
        admin = make_user(s, "gradechief", role="admin")
        str2 = make_project(s, "str2", k=2, members=users, strength=True)
        bw4 = make_project(s, "bw4", k=4, members=users)
        rank4 = make_project(s, "rank4", k=4, members=users, ranking_mode="rank")
        a = make_item(s, str2, "prompt a", candidates=["a A", "a B"], external_id="a")
        b = make_item(s, str2, "prompt b", candidates=["b A", "b B"], external_id="b")
        for user, verdict, strength in ((users[0], (PREF, 0, 1), 3), (users[1], (PREF, 0, 1), 1)):
            _set(s, make_judgment(s, a, user, {"overall": verdict}), strength=strength)
        _set(s, make_judgment(s, a, users[2], {"overall": (PREF, 1, 0)}), strength=2)
        _set(s, make_judgment(s, b, users[0], {"overall": (PREF, 1, 0)}), strength=3)
        _set(s, make_judgment(s, b, users[1], {"overall": (PREF, 1, 0)}), strength=2)
        make_judgment(s, b, users[2], {"overall": ("tie", None, None)})
        four = make_item(s, bw4, "prompt four", candidates=["A", "B", "C", "D"], external_id="four")
        make_judgment(s, four, users[0], {"overall": (PREF, 0, 3)})
        make_judgment(s, four, users[1], {"overall": (PREF, 0, 3)})
        make_judgment(s, four, users[2], {"overall": (PREF, 1, 2)})
        ranked = make_item(s, rank4, "prompt ranked", candidates=["rA", "rB", "rC", "rD"], external_id="ranked")
        A, B, C, D = _ids(s, ranked)
        for user, tiers, much in ((users[0], [[A], [B], [C], [D]], [0]), (users[1], [[A], [B, C], [D]], [])):
            judgment = make_judgment(s, ranked, user, {"overall": (PREF, 0, 3)})
            unranked = {"chosen_candidate_id": None, "rejected_candidate_id": None}
            _set(s, judgment, kind="ranking", ranking={"tiers": tiers, "much": much}, **unranked)
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        return {"token": token, "ids": {"A": A, "B": B, "C": C, "D": D}}


def _rows(client: TestClient, graded: dict[str, Any], slug: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(
        f"/api/v1/projects/{slug}/export.jsonl",
        params=params,
        headers={"Authorization": f"Bearer {graded['token']}"},
    )
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.content.splitlines()]


def test_strength_is_signed_toward_the_exported_direction(client: TestClient, graded: dict[str, Any]) -> None:
    rows = {row["meta"]["external_id"]: row["meta"] for row in _rows(client, graded, "str2")}
    a, b = rows["a"], rows["b"]
    assert (a["chosen_position"], a["strength"], a["mean_strength"]) == (0, [3, 1, -2], 0.6667)
    assert a["strength_margin"] == pytest.approx(0.2222)
    # The chosen one is the second candidate: its voters' strengths count for it, the tie counts 0.
    assert (b["chosen_position"], b["strength"], b["mean_strength"]) == (1, [3, 2, 0], 1.6667)
    assert b["votes"] == {"chosen": 2, "rejected": 0, "tie": 1}


def test_min_strength_drops_weak_pairs_and_says_so(client: TestClient, graded: dict[str, Any]) -> None:
    kept = _rows(client, graded, "str2", min_strength=1)
    assert [row["meta"]["external_id"] for row in kept] == ["b"]
    preview = client.get(
        "/api/v1/projects/str2/export/preview",
        params={"min_strength": 1},
        headers={"Authorization": f"Bearer {graded['token']}"},
    ).json()
    assert preview["dropped"]["min_strength"] == 1 and preview["kept"] == 1


def test_a_middle_pair_at_k4_has_pair_and_item_agreement(client: TestClient, graded: dict[str, Any]) -> None:
    rows = {
        (row["meta"]["chosen_position"], row["meta"]["rejected_position"]): row["meta"]
        for row in _rows(client, graded, "bw4")
    }
    middle = rows[(1, 2)]  # B ≻ C: only u3 said anything of it
    assert middle["votes"] == {"chosen": 1, "rejected": 0, "tie": 0}
    assert (middle["agreement"], middle["item_agreement"]) == (1.0, 0.3333)
    contested = rows[(0, 1)]  # A ≻ B: u1 and u2 for, u3 against
    assert (contested["agreement"], contested["item_agreement"]) == (0.6667, 0.6667)
    assert not STRENGTH_KEYS & set(middle)  # no strength asked, no ranking: the keys of before only
    assert "confidence" not in middle
    assert [r["meta"]["external_id"] for r in _rows(client, graded, "bw4", min_votes=2)] == ["four"] * 5


def test_rankings_give_strength_across_a_much_better_gap(client: TestClient, graded: dict[str, Any]) -> None:
    rows = {
        (row["meta"]["chosen_position"], row["meta"]["rejected_position"]): row["meta"]
        for row in _rows(client, graded, "rank4")
    }
    assert rows[(0, 1)]["strength"] == [3]  # u1 put a "much better" gap under A; u2 did not
    assert rows[(0, 1)]["mean_strength"] == 3.0
    assert rows[(2, 3)]["strength"] == [] and rows[(2, 3)]["mean_strength"] is None
    assert (1, 2) not in rows  # u1 B ≻ C, u2 B = C: as many ties as votes, dropped as a tie
    assert set(rows) == {(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)}


def test_strength_meta_loads_in_datasets(client: TestClient, graded: dict[str, Any], tmp_path: Any) -> None:
    """Every strength key keeps one type across rows (Arrow refuses mixed types)."""
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "rank4.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows(client, graded, "rank4")))
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert len(loaded) == 5
    assert loaded[0]["meta"]["strength"] == [3]
