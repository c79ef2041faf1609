"""End to end on the CPU: an annotated project → a snapshot frozen by the export service → `prefstudio train`
(a real subprocess, TRL's DPOTrainer on a tiny random Llama) against the app served on a free port → the run,
its metrics and the saved model.

Needs the ``[train]`` extra. Without it the test is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.export import snapshots
from app.export.pseudonyms import pseudonym_key
from app.export.schemas import ExportFilter
from app.models import Candidate, RegisteredModel, Snapshot, TrainingRun, User, Verdict
from app.registry.weights import weights_digest
from tests.factories import make_item, make_judgment, make_project, make_user

PROMPTS = [
    "Explain machine learning simply.",
    [{"role": "user", "content": "请用简单的语言解释什么是机器学习。"}],
    "Write a function that adds two numbers.",
    "Why are polite answers preferred?",
    "Describe a fox in one sentence.",
    "What is a preference pair?",
]


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
            filters=ExportFilter(format="conversational", test_share=0.5),  # held-out rows to evaluate on
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


def trainer_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFSTUDIO_")}  # the trainer needs no app config
    return env | {
        "PREFSTUDIO_TOKEN": token,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "0",
    }


def train_args(served: str, model: Path, output: Path, *, steps: int) -> list[str]:
    return [
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


def train_on(
    served: str,
    token: str,
    model: Path,
    output: Path,
    cwd: Path,
    *,
    steps: int,
    log_name: str,
    extra: tuple[str, ...] = (),
) -> str:
    """`prefstudio train` on the latest snapshot of the token's project, in a subprocess; its log is kept and
    its stderr returned."""
    command = [
        str(Path(sys.executable).with_name("prefstudio")),
        *train_args(served, model, output, steps=steps),
        *extra,
    ]
    env = trainer_env(token)
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    log = f"exit {done.returncode} after {seconds:.1f} s\nstdout:\n{done.stdout[-3000:]}\n"
    log += f"stderr:\n{done.stderr[-6000:]}\n"
    (Path(__file__).resolve().parents[2] / "test-artifacts" / log_name).write_text(log)
    assert done.returncode == 0, log
    assert "done; model saved to" in done.stderr
    return done.stderr


def held_out_rows(db: Database, settings: Settings, snapshot_id: int) -> int:
    """How many rows of the snapshot's file the export put in its test split."""
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, snapshot_id)
        assert snapshot is not None and snapshot.file_name
        path = settings.data_dir / snapshot.file_name
    return sum(json.loads(line)["meta"]["split"] == "test" for line in path.read_text().splitlines())


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
    held_out = held_out_rows(db, settings, snapshot_id)
    output = tmp_path / "ranked-model"
    extra = ("--eval-steps", "1")  # evaluated after each step, and not once more at the end
    train_on(served, token, tiny_model, output, tmp_path, steps=2, log_name="train-ranked.log", extra=extra)
    with db.session(write=False) as s:
        run = s.scalars(select(TrainingRun).where(TrainingRun.snapshot_id == snapshot_id)).one()
        assert run.state == "done", run.error
        assert [e["step"] for e in run.metrics if "loss" in e] == [1, 2]
        (sizes,) = [e for e in run.metrics if "train_pairs" in e]
        assert (sizes["train_pairs"], sizes["eval_pairs"]) == ((12 - held_out, held_out) if held_out else (12, 0))
        evaluated = [e["step"] for e in run.metrics if "eval_rewards/accuracies" in e]
        assert evaluated == ([1, 2] if held_out else [])
        assert run.params["eval_steps"] == 1


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
    held_out = held_out_rows(db, settings, snapshot_id)
    assert 0 < held_out < len(PROMPTS)  # the export's split by item id, at a test share of 0.5
    output = tmp_path / "dpo-model"
    stderr = train_on(served, token, tiny_model, output, tmp_path, steps=3, log_name="train-e2e.log")

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
        assert [e for e in run.metrics if "train_pairs" in e] == [
            {"step": 0, "train_pairs": len(PROMPTS) - held_out, "eval_pairs": held_out}
        ]
        (evaluation,) = [e for e in run.metrics if "eval_rewards/accuracies" in e]  # once, at the end
        assert evaluation["step"] == 3 and 0.0 <= evaluation["eval_rewards/accuracies"] <= 1.0
        run_id = run.id
        sft, dpo = s.scalars(select(RegisteredModel).order_by(RegisteredModel.id)).all()
        assert (sft.kind, sft.uri, sft.weights_sha256) == ("sft", str(tiny_model), weights_digest(tiny_model))
        assert (dpo.kind, dpo.name, dpo.uri, dpo.parent_id) == (
            "checkpoint",
            "dpo-model",
            str(output.resolve()),
            sft.id,
        )
        assert dpo.weights_sha256 == weights_digest(output) != sft.weights_sha256
        assert (dpo.training_run_id, dpo.snapshot_id) == (run_id, snapshot_id)
        assert dpo.metrics["eval_rewards/accuracies"] == evaluation["eval_rewards/accuracies"]
        dpo_id = dpo.id
    assert stderr.rstrip().splitlines()[-1].endswith(f"registered as model 'dpo-model' (id {dpo_id})")

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
    assert f'id="chain-model-{dpo_id}"' in page.text and "held-out reward accuracy" in page.text
