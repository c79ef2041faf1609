"""End to end on the CPU: an annotated project → a snapshot frozen by the export service → `prefstudio train`
(a real subprocess, TRL's DPOTrainer on a tiny random Llama) against the app served on a free port → the run,
its metrics and the saved model.

Needs the ``[train]`` extra. Without it the test is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.export import snapshots
from app.export.pseudonyms import pseudonym_key
from app.export.schemas import ExportFilter
from app.models import Candidate, Snapshot, TrainingRun, User, Verdict
from tests.factories import make_item, make_judgment, make_project, make_user
from tests.support.vllm import free_port

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PROMPTS = [
    "Explain machine learning simply.",
    [{"role": "user", "content": "请用简单的语言解释什么是机器学习。"}],
    "Write a function that adds two numbers.",
    "Why are polite answers preferred?",
    "Describe a fox in one sentence.",
    "What is a preference pair?",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [m for m in ("trl", "torch", "transformers", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"the [train] extra is not installed (missing {', '.join(missing)}): pip install -e '.[train]'"
        if IN_CI:
            pytest.fail(f"CI=true: the training test must run; {message}")
        pytest.skip(message)
    from tests.support.make_tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-sft") / "model")


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The test app behind a real HTTP server (uvicorn in a thread), for a client in another process."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def annotated_snapshot(db: Database, settings: Settings) -> tuple[int, str, User]:
    """Six items, three annotators who agree: the export service freezes their pairs (conversational)."""
    with db.session() as s:
        annotators = [make_user(s, f"ann{i}") for i in range(3)]
        admin = make_user(s, "chief", role="admin")
        project = make_project(s, "dpo", k=2, overlap=3, members=annotators)
        for n, prompt in enumerate(PROMPTS):
            item = make_item(
                s, project, prompt, candidates=["The quick brown fox jumps over the lazy dog.", f"def add(a, b): {n}"]
            )
            for user in annotators:
                make_judgment(s, item, user, {"overall": ("preference", 0, 1)}, reason=f"{user.username}: clearer")
        snapshot = snapshots.create_snapshot(
            s,
            project=project,
            filters=ExportFilter(format="conversational"),
            name="first six",
            key=pseudonym_key(settings.data_dir),
            created_by_id=admin.id,
        )
        snapshot_id = snapshot.id
        _, token = create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)
        s.expunge(admin)
    assert snapshots.write_snapshot(db, snapshot_id=snapshot_id, settings=settings) == "ready"
    with db.session(write=False) as s:
        written = s.get(Snapshot, snapshot_id)
        assert written is not None and written.row_count == len(PROMPTS)
    return snapshot_id, token, admin


def train_on(served: str, token: str, model: Path, output: Path, cwd: Path, *, steps: int, log_name: str) -> None:
    """`prefstudio train` on the latest snapshot of the token's project, in a subprocess; its log is kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFSTUDIO_")}  # the trainer needs no app config
    env |= {"PREFSTUDIO_TOKEN": token, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "0"}
    command = [
        str(Path(sys.executable).with_name("prefstudio")),
        "train",
        "--url", served,
        "--snapshot", "latest",
        "--model", str(model),
        "--output", str(output),
        "--max-steps", str(steps),
        "--logging-steps", "1",
        "--per-device-batch", "2",
        "--grad-accum", "1",
        "--learning-rate", "1e-3",  # large enough for the weights to move visibly in three steps
        "--warmup-steps", "0",
        "--max-length", "256",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    log = f"exit {done.returncode} after {seconds:.1f} s\nstdout:\n{done.stdout[-3000:]}\n"
    log += f"stderr:\n{done.stderr[-6000:]}\n"
    (Path(__file__).resolve().parents[2] / "test-artifacts" / log_name).write_text(log)
    assert done.returncode == 0, log
    assert "done; model saved to" in done.stderr


def ranked_snapshot(db: Database, settings: Settings) -> tuple[int, str]:
    """A rank-mode project at k = 3: three annotators rank every candidate, two mark a "much better" gap; its
    snapshot (standard format) carries strength meta."""
    with db.session() as s:
        annotators = [make_user(s, f"ranker{i}") for i in range(3)]
        admin = make_user(s, "rankchief", role="admin")
        project = make_project(s, "ranked", k=3, overlap=3, members=annotators, ranking_mode="rank")
        for n, prompt in enumerate(PROMPTS[:4]):
            item = make_item(s, project, prompt, candidates=["A clear answer.", f"def add(a, b): {n}", "?"])
            ids = [
                c.id
                for c in sorted(
                    s.scalars(select(Candidate).where(Candidate.item_id == item.id)), key=lambda c: c.position
                )
            ]
            for number, user in enumerate(annotators):
                judgment = make_judgment(s, item, user, {"overall": ("preference", 0, 2)})
                verdict = s.scalars(select(Verdict).where(Verdict.judgment_id == judgment.id)).one()
                verdict.kind, verdict.chosen_candidate_id, verdict.rejected_candidate_id = "ranking", None, None
                verdict.ranking = {"tiers": [[ids[0]], [ids[1]], [ids[2]]], "much": [1] if number < 2 else []}
        snapshot = snapshots.create_snapshot(
            s,
            project=project,
            filters=ExportFilter(),
            name="ranked",
            key=pseudonym_key(settings.data_dir),
            created_by_id=admin.id,
        )
        snapshot_id = snapshot.id
        _, token = create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)
    assert snapshots.write_snapshot(db, snapshot_id=snapshot_id, settings=settings) == "ready"
    return snapshot_id, token


def test_train_on_a_ranked_snapshot_with_strength_meta(
    tiny_model: Path, served: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    """DPOTrainer loads the rows' strength and agreement meta (lists and nullable floats) unchanged."""
    snapshot_id, token = ranked_snapshot(db, settings)
    with db.session(write=False) as s:
        written = s.get(Snapshot, snapshot_id)
        assert written is not None and written.file_name and written.row_count == 12  # 3 pairs × 4 items
        rows = [json.loads(line) for line in (settings.data_dir / written.file_name).read_text().splitlines()]
    strengths = {(r["meta"]["chosen_position"], r["meta"]["rejected_position"]): r["meta"]["strength"] for r in rows}
    assert strengths == {(0, 1): [], (0, 2): [3, 3], (1, 2): [3, 3]}
    assert {r["meta"]["item_agreement"] for r in rows} == {1.0}
    train_on(served, token, tiny_model, tmp_path / "ranked-model", tmp_path, steps=2, log_name="train-ranked.log")
    with db.session(write=False) as s:
        run = s.scalars(select(TrainingRun).where(TrainingRun.snapshot_id == snapshot_id)).one()
        assert run.state == "done", run.error
        assert [e["step"] for e in run.metrics if "loss" in e] == [1, 2]


def test_train_on_a_snapshot_reports_to_the_app(
    tiny_model: Path,
    served: str,
    db: Database,
    settings: Settings,
    client: TestClient,
    login_as: Callable[[User], str],
    tmp_path: Path,
) -> None:
    snapshot_id, token, admin = annotated_snapshot(db, settings)
    output = tmp_path / "dpo-model"
    train_on(served, token, tiny_model, output, tmp_path, steps=3, log_name="train-e2e.log")

    with db.session(write=False) as s:
        (run,) = s.query(TrainingRun).all()
        assert run.snapshot_id == snapshot_id and run.state == "done", run.error
        assert run.error is None and run.finished_at is not None
        assert run.base_model == str(tiny_model) and run.output_dir == str(output.resolve())
        assert run.params["max_steps"] == 3 and run.params["effective_batch"] == 2 and run.params["beta"] == 0.1
        assert run.params["environment"]["device"] == "cpu" and "trl" in run.params["environment"]
        steps = [e for e in run.metrics if "loss" in e]
        assert [e["step"] for e in steps] == [1, 2, 3]
        for entry in steps:
            for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
                assert isinstance(entry[key], float), (key, entry)
        assert any("train_runtime" in e for e in run.metrics)  # the trainer's closing summary
        assert steps[-1]["rewards/margins"] != 0.0  # the policy moved away from the reference
        run_id = run.id

    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (output / name).is_file(), name
    from safetensors.numpy import load_file

    before, after = load_file(str(tiny_model / "model.safetensors")), load_file(str(output / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before), "the saved model equals the base model"

    login_as(admin)
    page = client.get("/projects/dpo/training")
    assert page.status_code == 200
    assert f'id="run-{run_id}"' in page.text and ">done<" in page.text
    assert "<polyline" in page.text
