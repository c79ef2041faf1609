"""label=model: the consensus model's direction, its confidence in every row, and min_confidence — on a project
where two annotators always vote against the others, so the model trusts one careful vote over their two."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from tests.factories import make_item, make_judgment, make_project, make_user

PREF = "preference"


@pytest.fixture
def contrarians(db: Database, settings: Settings) -> dict[str, Any]:
    """k = 2; careful annotators c1–c3 vote for the truth, contrary ones x1, x2 against it, on 24 items (truth
    alternating A, B); each careful one errs once (items 1, 5, 9: there the majority is wrong). On item "target"
    (truth A) only c1, x1 and x2 vote: the majority says B. Item "doubt": c1 and c3 say A, c2 B — which the model
    believes less surely than the items where all five voted."""
    with db.session() as s:
        careful = [make_user(s, f"careful{n}") for n in (1, 2, 3)]
        contrary = [make_user(s, f"contrary{n}") for n in (1, 2)]
        admin = make_user(s, "modelchief", role="admin")
        project = make_project(s, "model2", k=2, members=careful + contrary)
        for number in range(24):
            item = make_item(s, project, f"prompt {number}", candidates=[f"A{number}", f"B{number}"])
            truth = (PREF, 0, 1) if number % 2 == 0 else (PREF, 1, 0)
            wrong = (PREF, truth[2], truth[1])
            for n, user in enumerate(careful):
                make_judgment(s, item, user, {"overall": wrong if number == 4 * n + 1 else truth})
            for user in contrary:
                make_judgment(s, item, user, {"overall": wrong})
        target = make_item(s, project, "the target", candidates=["right", "wrong"], external_id="target")
        make_judgment(s, target, careful[0], {"overall": (PREF, 0, 1)})
        for user in contrary:
            make_judgment(s, target, user, {"overall": (PREF, 1, 0)})
        doubt = make_item(s, project, "careful ones differ", candidates=["doubt A", "doubt B"], external_id="doubt")
        for user, verdict in zip(careful, [(PREF, 0, 1), (PREF, 1, 0), (PREF, 0, 1)], strict=True):
            make_judgment(s, doubt, user, {"overall": verdict})
        return {"token": create_api_token(s, user=admin, scope="api", settings=settings)[1]}


def _rows(client: TestClient, token: str, **params: Any) -> dict[str, dict[str, Any]]:
    r = client.get("/api/v1/projects/model2/export.jsonl", params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.content.splitlines()]
    return {row["meta"]["external_id"] or str(row["meta"]["item_id"]): row for row in rows}


def test_the_model_overrules_a_majority_of_unreliable_votes(client: TestClient, contrarians: dict[str, Any]) -> None:
    majority = _rows(client, contrarians["token"])
    assert majority["target"]["chosen"] == "wrong" and majority["target"]["meta"]["votes"]["chosen"] == 2
    assert "confidence" not in majority["target"]["meta"]
    model = _rows(client, contrarians["token"], label="model")
    target = model["target"]
    assert (target["chosen"], target["rejected"]) == ("right", "wrong")
    assert target["meta"]["votes"] == {"chosen": 1, "rejected": 2, "tie": 0}  # the votes as they were
    assert target["meta"]["confidence"] > 0.9
    assert target["meta"]["margin"] == -1
    assert len(model) == 26  # every item, each the careful annotators' way
    assert model["doubt"]["chosen"] == "doubt A"
    for key, row in model.items():
        if key not in ("target", "doubt"):
            assert row["chosen"].startswith("A") == (int(row["prompt"].split()[-1]) % 2 == 0)


def test_min_confidence_drops_pairs_the_model_doubts(client: TestClient, contrarians: dict[str, Any]) -> None:
    token = contrarians["token"]
    everything = _rows(client, token, label="model")
    confidences = sorted(row["meta"]["confidence"] for row in everything.values())
    assert everything["doubt"]["meta"]["confidence"] < confidences[-1]
    threshold = (everything["doubt"]["meta"]["confidence"] + confidences[-1]) / 2
    kept = _rows(client, token, label="model", min_confidence=threshold)
    assert len(kept) == sum(c >= threshold for c in confidences) < len(everything)
    preview = client.get(
        "/api/v1/projects/model2/export/preview",
        params={"label": "model", "min_confidence": threshold},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert preview["dropped"]["min_confidence"] == len(everything) - len(kept)
    # With the majority's label, min_confidence asks the model about the majority's direction: it keeps the
    # items where the two agree, and drops the target and the three items where a careful one erred.
    majority = _rows(client, token)
    by_majority = _rows(client, token, min_confidence=0.5)
    agreeing = {key for key, row in majority.items() if everything[key]["chosen"] == row["chosen"]}
    assert set(by_majority) == agreeing and len(agreeing) == len(majority) - 4, sorted(by_majority)
    assert "target" not in by_majority
    assert all("confidence" in row["meta"] for row in by_majority.values())
