"""`prefstudio train` under `accelerate launch`, two processes on the CPU (gloo): both train, the app hears of the
run once — one run, one set of log entries, one registered checkpoint.

On a machine without CUDA, `accelerate launch --cpu --num_processes 2` starts ONE process (several CPU processes
need mpirun there); `--multi_gpu --num_processes 2` starts two through torchrun, and the trainer's CPU settings
make them a gloo group (accelerate's MULTI_CPU). Needs the ``[train]`` extra, like the other training test.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.models import RegisteredModel, TrainingRun
from tests.support.vllm import free_port
from tests.training.test_train_e2e import annotated_snapshot, train_args, trainer_env


# Once, on PostgreSQL (about 2 minutes on 2 cores): what the app records does not depend on the backend, which
# test_train_e2e covers on both.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_processes_report_once(
    tiny_model: Path, served: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    snapshot_id, token, _admin = annotated_snapshot(db, settings)
    output = tmp_path / "dpo-ddp"
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "accelerate"), "launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        str(bin_dir / "prefstudio"), *train_args(served, tiny_model, output, steps=2),
    ]  # fmt: skip
    env = trainer_env(token) | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    log = f"exit {done.returncode} after {time.monotonic() - started:.1f} s\nstdout:\n{done.stdout[-3000:]}\n"
    log += f"stderr:\n{done.stderr[-8000:]}\n"
    (Path(__file__).resolve().parents[2] / "test-artifacts" / "train-accelerate.log").write_text(log)
    assert done.returncode == 0, log
    assert "done (another process reports the run)" in done.stderr, log  # the second process trained too

    with db.session(write=False) as s:
        (run,) = s.scalars(select(TrainingRun)).all()
        assert run.snapshot_id == snapshot_id and run.state == "done", run.error
        assert run.params["environment"]["processes"] == "2"
        keys = Counter(tuple(sorted(e.items())) for e in run.metrics)
        assert max(keys.values()) == 1, keys  # no entry twice
        assert [e["step"] for e in run.metrics if "loss" in e] == [1, 2]
        assert len([e for e in run.metrics if "train_pairs" in e]) == 1
        assert len([e for e in run.metrics if "eval_rewards/accuracies" in e]) == 1
        assert len([e for e in run.metrics if "train_runtime" in e]) == 1
        models = s.scalars(select(RegisteredModel).order_by(RegisteredModel.id)).all()
        assert [(m.kind, m.training_run_id) for m in models] == [("sft", None), ("checkpoint", run.id)]
        assert models[1].uri == str(output.resolve()) and models[1].weights_sha256 is not None
    assert (output / "model.safetensors").is_file()
    assert f"registered as model 'dpo-ddp' (id {models[1].id})" in done.stderr
