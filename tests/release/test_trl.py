"""A release trains as it is: TRL's ``DPOTrainer`` takes its default config straight from ``load_dataset`` (the
``meta`` column, a JSON string, rides along untouched). One step on a tiny random model on the CPU."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()
NEEDED = ("trl", "torch", "transformers", "datasets")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the [train] extra is not installed (missing {', '.join(missing)})")
    from tests.support.make_tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-sft") / "model")


# Once, on SQLite: what is trained on is the release's files, the same from either backend.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fmt", ["conversational", "standard"])
def test_dpo_trainer_trains_on_a_release(
    env: None, make_snapshot: Callable[..., int], tiny_model: Path, tmp_path: Path, fmt: str
) -> None:
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = tmp_path / "release"
    result = runner.invoke(cli, ["release", str(make_snapshot(fmt)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    config = DPOConfig(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=2,
        max_steps=1,
        max_length=128,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=str(tiny_model),
        args=config,
        train_dataset=data["train"],
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
    )
    trainer.train()
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    assert trainer.state.global_step == 1 and losses and math.isfinite(losses[0])
