"""The whole loop on the CPU, through the API: a project annotated by three annotators → a snapshot → `prefstudio
train` (TRL's DPOTrainer on the tiny random Llama, a real subprocess) → the checkpoint in the registry → a vLLM
server on that checkpoint, bound to it → round 2 generated from it and judged → an arena between the SFT model (on
the session's vLLM server) and the checkpoint, judged by planted annotators → the leaderboard's win rates and
Bradley–Terry ratings equal the test's own count and fit.

The random model learns nothing: the test checks the plumbing and the statistics, not improvement. Needs the
``[train]`` extra and the vLLM virtualenv: skipped without them, failed in CI (CI=true), like the training and
vLLM tests.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.optimize import root
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs import runner
from app.models import Candidate, Item, Judgment, Project
from app.registry.weights import weights_digest
from tests.factories import make_user
from tests.support import vllm
from tests.support.vllm import MODEL_NAME
from tests.training.test_train_e2e import train_on

# Two vLLM servers start here (the session's, on the SFT model, may start in this test): minutes on a busy machine.
pytestmark = pytest.mark.timeout(1500)

SLUG = "loop"
GOOD = "The quick brown fox jumps over the lazy dog."
PROMPTS = [f"Question {n}: explain idea number {n} simply." for n in range(12)]
ALPHA = 0.01  # docs/arena.md: choix's ILSR with a pseudo-count of 0.01 in its chain
ELO_SCALE = 400 / math.log(10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _people(db: Database, settings: Settings) -> tuple[dict[str, dict[str, str]], list[str]]:
    """An admin and three annotators with API tokens: header sets by name, and the annotators' names."""
    names = ["ann0", "ann1", "ann2"]
    with db.session() as s:
        admin = make_user(s, "chief", role="admin")
        users = [admin, *(make_user(s, n) for n in names)]
        tokens = {u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in users}
    return {name: bearer(token) for name, token in tokens.items()}, names


def _annotated_project(client: TestClient, h: dict[str, dict[str, str]], names: list[str]) -> list[Any]:
    """The project made, filled and judged through the API: every annotator prefers the fox sentence."""
    admin = h["chief"]
    ok(client.post("/api/v1/projects", json={"name": "Loop", "slug": SLUG, "gold_share": 0}, headers=admin), 201)
    for name in names:
        ok(client.post(f"/api/v1/projects/{SLUG}/members", json={"username": name}, headers=admin), 201)
    body = "".join(
        json.dumps({"prompt": p, "candidates": [GOOD, f"def add(a, b): {n}"]}) + "\n" for n, p in enumerate(PROMPTS)
    )
    imported = client.post(
        f"/api/v1/projects/{SLUG}/import", content=body, headers={**admin, "Content-Type": "application/x-ndjson"}
    )
    ok(imported, 201)
    votes = _judge(
        client,
        h,
        names,
        SLUG,
        lambda a, n, cands: (cands[0], cands[1]) if cands[0]["text"] == GOOD else (cands[1], cands[0]),
        tag="round1",
    )
    assert len(votes) == 3 * len(PROMPTS)
    return votes


def _judge(
    client: TestClient, h: dict[str, dict[str, str]], names: list[str], slug: str, pick: Any, *, tag: str
) -> list[Any]:
    """Every annotator takes items until none is left; ``pick(annotator, n, candidates)`` gives (chosen, rejected)
    or None for a tie; ``tag`` makes the submit keys new. Returns (annotator, item id, chosen id or None,
    rejected id or None) per submission."""
    random.seed(22)  # the queue's display order
    out = []
    for a, name in enumerate(names):
        n = 0
        while (task := ok(client.post(f"/api/v1/projects/{slug}/next", headers=h[name]))["assignment"]) is not None:
            assert all(c["model"] is None for c in task["candidates"]) or slug == SLUG
            picked = pick(a, n, task["candidates"])
            verdict = (
                {"kind": "tie"}
                if picked is None
                else {"kind": "preference", "chosen": picked[0]["id"], "rejected": picked[1]["id"]}
            )
            verdicts = {d["key"]: verdict for d in task["dimensions"]} | {"overall": verdict}
            submit = {"assignment_id": task["assignment_id"], "submit_key": f"{tag}-{a}-{n:04d}", "verdicts": verdicts}
            ok(client.post(f"/api/v1/projects/{slug}/judgments", json=submit, headers=h[name]), 201)
            out.append((a, task["item_id"], picked and picked[0]["id"], picked and picked[1]["id"]))
            n += 1
    return out


def _run_jobs(db: Database) -> None:
    """Run every queued job (generation, snapshot) to its end, as `prefstudio worker` would."""
    while (ran := runner.run_one(db, worker_id="loop")) is not None:
        assert ran[1] == "done", ran


def _snapshot(client: TestClient, db: Database, admin: dict[str, str]) -> dict[str, Any]:
    filters = {"format": "conversational", "test_share": 0.5}
    made = ok(
        client.post(f"/api/v1/projects/{SLUG}/snapshots", json={"name": "r1", "filters": filters}, headers=admin), 202
    )
    _run_jobs(db)
    (snapshot,) = [
        s for s in ok(client.get(f"/api/v1/projects/{SLUG}/snapshots", headers=admin)) if s["id"] == made["id"]
    ]
    assert snapshot["state"] == "ready" and snapshot["row_count"] == len(PROMPTS) and len(snapshot["sha256"]) == 64
    return snapshot  # type: ignore[no-any-return]


@pytest.fixture
def checkpoint_server(tmp_path: Path) -> Iterator[Any]:
    """Starts a vLLM server on a directory when called; stopped at the end of the test."""
    python = vllm.vllm_python()
    assert python is not None  # the session's vLLM fixture has skipped or failed the test otherwise
    servers: list[Any] = []

    def start(model_dir: Path) -> str:
        server = vllm.vllm_server(python, model_dir, vllm.HERE.parent.parent / "test-artifacts" / "vllm-dpo.log")
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _registered(
    client: TestClient, admin: dict[str, str], snapshot: dict[str, Any], tiny: Path, out: Path
) -> tuple[int, int]:
    """The registry shows the SFT model and the checkpoint with its lineage, snapshot and weights digest."""
    models = ok(client.get(f"/api/v1/projects/{SLUG}/models", headers=admin))
    sft, dpo = sorted(models, key=lambda m: m["id"])
    assert (sft["kind"], sft["uri"]) == ("sft", str(tiny))
    # The SFT parent registered for the run gets the digest the worker sends, or none (docs/models.md).
    assert sft["weights_sha256"] in (None, weights_digest(tiny))
    assert (dpo["kind"], dpo["uri"], dpo["parent_id"], dpo["parent_name"]) == (
        "checkpoint",
        str(out.resolve()),
        sft["id"],
        sft["name"],
    )
    assert (dpo["snapshot_id"], dpo["snapshot_sha256"]) == (snapshot["id"], snapshot["sha256"])
    assert dpo["weights_sha256"] == weights_digest(out) != sft["weights_sha256"]
    assert dpo["training_run_id"] is not None and sft["children"] == [dpo["id"]]
    return sft["id"], dpo["id"]


def _bind(client: TestClient, admin: dict[str, str], model_id: int, base: str) -> None:
    url = f"/api/v1/projects/{SLUG}/models/{model_id}"
    bound = ok(client.patch(url, json={"base_url": base, "served_name": MODEL_NAME}, headers=admin))
    assert (bound["base_url"], bound["served_name"]) == (base, MODEL_NAME)
    health = ok(client.get(url + "/health", headers=admin))
    assert health["bound"] and [s["ok"] for s in health["servers"]] == [True]


def _round_two(client: TestClient, db: Database, admin: dict[str, str], dpo: dict[str, Any]) -> None:
    """Every item regenerated from the checkpoint: each current candidate records its id and weights digest."""
    settings = {"max_tokens": 8, "temperature": 1.0, "seed": 7}
    ok(client.put(f"/api/v1/projects/{SLUG}/generation/settings", json=settings, headers=admin))
    body = {"selection": "all_ready", "model_id": dpo["id"]}
    job = ok(client.post(f"/api/v1/projects/{SLUG}/generation/jobs", json=body, headers=admin), 201)
    assert job["params"]["settings"]["weights_sha256"] == dpo["weights_sha256"]
    _run_jobs(db)
    assert ok(client.get(f"/api/v1/projects/{SLUG}/jobs/{job['id']}", headers=admin))["state"] == "done"
    with db.session(write=False) as s:
        rows = s.execute(
            select(Item.round, Candidate.model_id, Candidate.weights_sha256, Candidate.base_url)
            .join(Candidate, (Candidate.item_id == Item.id) & (Candidate.round == Item.round))
            .join(Project, Project.id == Item.project_id)
            .where(Project.slug == SLUG)
        ).all()
    assert len(rows) == 2 * len(PROMPTS)
    assert set(rows) == {(1, dpo["id"], dpo["weights_sha256"], dpo["base_url"])}


def bt_theta(comparisons: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Our own Bradley–Terry fit: the fixed point of the regularised Luce chain the docs describe — for each
    model i, Σ_j w_j (α + c_ij / (w_i + w_j)) = w_i Σ_j (α + c_ji / (w_i + w_j)), weights of mean 1 — solved with
    scipy's root finder. Log-strengths, mean 0. (α = 0 is the maximum-likelihood estimate.)"""
    m = len(comparisons)

    def balance(x: np.ndarray) -> list[float]:
        w = np.exp(x)
        w = m * w / w.sum()
        flows = [
            sum(
                w[j] * (alpha + comparisons[i, j] / (w[i] + w[j])) - w[i] * (alpha + comparisons[j, i] / (w[i] + w[j]))
                for j in range(m)
                if j != i
            )
            for i in range(m - 1)
        ]
        return [*flows, float(x.mean())]

    x = root(balance, np.zeros(m), tol=1e-14).x
    return x - x.mean()  # type: ignore[no-any-return]


def _arena(
    client: TestClient, db: Database, admin: dict[str, str], snapshot_id: int, ids: list[int]
) -> tuple[str, int]:
    """An arena of the two models on the snapshot's held-out prompts, generated and opened; (slug, identical)."""
    body = {"name": "SFT vs DPO r1", "model_ids": ids, "snapshot_id": snapshot_id, "overlap": 3}
    made = ok(client.post(f"/api/v1/projects/{SLUG}/arenas", json=body, headers=admin), 201)
    assert made["state"] == "generating" and made["items"] > 0
    _run_jobs(db)
    (listed,) = ok(client.get(f"/api/v1/projects/{SLUG}/arenas", headers=admin))  # the first read opens it
    assert listed["slug"] == made["slug"] and listed["state"] in ("annotating", "decided")
    assert listed["items"] + listed["identical"] == made["items"]
    return str(made["slug"]), int(listed["identical"])


def _judge_arena(
    client: TestClient, db: Database, h: dict[str, dict[str, str]], names: list[str], slug: str, ids: list[int]
) -> np.ndarray:
    """Planted annotators: ann0 always prefers the checkpoint, ann1 on every other item, ann2 calls a tie. The test
    knows which candidate is which model (the annotators do not). Returns the votes they submitted, counted:
    [wins[a, b] (a over b), ties[a, b]] in the arena's model order."""
    with db.session(write=False) as s:
        arena = s.scalar(select(Project).where(Project.slug == slug))
        assert arena is not None
        written = s.execute(select(Candidate.id, Candidate.model_id).join(Item).where(Item.project_id == arena.id))
        model_of = {cid: mid for cid, mid in written.tuples() if mid is not None}
    sft, dpo = ids

    def pick(a: int, n: int, cands: list[dict[str, Any]]) -> Any:
        by_model = {model_of[c["id"]]: c for c in cands}
        plan = ["dpo", "dpo" if n % 2 == 0 else "sft", "tie"][a]
        return (
            None
            if plan == "tie"
            else (by_model[dpo], by_model[sft])
            if plan == "dpo"
            else (by_model[sft], by_model[dpo])
        )

    votes: Any = np.zeros((2, 2, 2))
    for _, _, chosen, rejected in _judge(client, h, names, slug, pick, tag="arena"):
        if chosen is None:
            votes[1, 0, 1] += 1
            votes[1, 1, 0] += 1
        else:
            votes[0, ids.index(model_of[chosen]), ids.index(model_of[rejected])] += 1
    return np.asarray(votes, dtype=float)


def _check_board(board: dict[str, Any], votes: np.ndarray, names: list[str], identical: int, overlap: int) -> None:
    """Every dimension's figures (all got the same verdicts) against our own count and Bradley–Terry fit."""
    wins, ties = votes[0], votes[1] + identical * overlap * (1 - np.eye(2))  # an identical prompt: r ties
    theta = bt_theta(wins + ties / 2)
    assert board["identical"] == identical and board["judgments"] == int(votes.sum() - votes[1].sum() / 2)
    assert len(board["dimensions"]) >= 2
    for dim in board["dimensions"]:
        (pair,) = dim["pairs"]
        assert (pair["a"], pair["b"]) == tuple(names)
        assert (pair["wins"], pair["ties"], pair["losses"]) == (wins[0, 1], ties[0, 1], wins[1, 0])
        assert pair["win_rate"] == pytest.approx((wins[0, 1] + ties[0, 1] / 2) / (wins.sum() + ties[0, 1]), abs=1e-12)
        assert pair["low"] <= pair["win_rate"] <= pair["high"]
        rated = {r["model"]: r for r in dim["ratings"]}
        for j, name in enumerate(names):
            assert (rated[name]["rating"] - 1000) / ELO_SCALE == pytest.approx(theta[j], abs=1e-6)
            assert rated[name]["low"] <= rated[name]["rating"] <= rated[name]["high"]
        # With two models, Bradley–Terry's maximum likelihood is the closed form ln(wins / losses) (ties half
        # each way); the pseudo-count moves it by far less than 0.01.
        closed = math.log((wins[1, 0] + ties[1, 0] / 2) / (wins[0, 1] + ties[0, 1] / 2))
        assert theta[1] - theta[0] == pytest.approx(closed, abs=0.01)
        assert [r["model"] for r in dim["ratings"]] == [names[1], names[0]]  # the planted checkpoint leads


# The whole loop once, on PostgreSQL (about 5 minutes on 2 cores); each part runs on SQLite too in its own tests.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_loop_from_annotation_to_the_arena(
    client: TestClient,
    db: Database,
    settings: Settings,
    served: str,
    tiny_model: Path,
    vllm_base_url: str,
    checkpoint_server: Any,
    tmp_path: Path,
) -> None:
    h, names = _people(db, settings)
    admin = h["chief"]
    first = _annotated_project(client, h, names)
    snapshot = _snapshot(client, db, admin)
    export = ok(client.post(f"/api/v1/projects/{SLUG}/tokens", json={"name": "trainer"}, headers=admin), 201)

    output = tmp_path / "dpo-r1"
    train_on(served, export["token"], tiny_model, output, tmp_path, steps=2, log_name="train-loop.log")
    sft_id, dpo_id = _registered(client, admin, snapshot, tiny_model, output)

    _bind(client, admin, dpo_id, checkpoint_server(output))
    _bind(client, admin, sft_id, vllm_base_url)
    dpo = ok(client.get(f"/api/v1/projects/{SLUG}/models/{dpo_id}", headers=admin))
    _round_two(client, db, admin, dpo)
    second = _judge(client, h, names, SLUG, lambda a, n, cands: (cands[0], cands[1]), tag="round2")
    assert len(second) == 3 * len(PROMPTS)
    with db.session(write=False) as s:
        rounds = s.scalars(select(Judgment.round).join(Project).where(Project.slug == SLUG)).all()
    assert sorted(rounds) == [0] * len(first) + [1] * len(second)  # round 2 judged as fully as the first

    slug, identical = _arena(client, db, admin, snapshot["id"], [sft_id, dpo_id])
    votes = _judge_arena(client, db, h, names, slug, [sft_id, dpo_id])
    board = ok(client.get(f"/api/v1/projects/{slug}/leaderboard", headers=bearer(export["token"])))
    models = {m["id"]: m["name"] for m in ok(client.get(f"/api/v1/projects/{SLUG}/models", headers=admin))}
    _check_board(board, votes, [models[sft_id], models[dpo_id]], identical, 3)
