"""The DPO training worker: download a snapshot (sha256-checked), train with TRL's ``DPOTrainer`` on its train
split, evaluate on its test split, save the model, register it and report to the app.

Runs on the training machine, not in the app: it talks to the app only over HTTP with the project's export
token. torch, transformers, datasets and trl (the ``[train]`` extra) are imported when training starts, so the
app and the rest of this module work without them. Under a distributed launcher (``accelerate launch``,
``torchrun``) every process trains; only the first records the run, reports and registers the model.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata as md
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.registry.weights import weights_digest
from app.training.client import AppClient, TrainingError
from app.training.heldout import HeldOut, split_snapshot
from app.training.reporting import Progress, Reporter, SilentProgress, make_callback
from app.training.schemas import TrainingParams

log = logging.getLogger("prefstudio.train")


def environment_facts() -> dict[str, str]:
    """Library versions and the device, recorded with the run."""
    facts: dict[str, str] = {}
    for name in ("trl", "transformers", "torch", "datasets", "accelerate"):
        try:
            facts[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    try:
        import torch  # local: the [train] extra, which may be missing here (see the module's docstring)

        facts["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        if torch.cuda.is_available():
            facts["devices"] = str(torch.cuda.device_count())
    except ImportError:
        pass
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        facts["processes"] = os.environ["WORLD_SIZE"]
    return facts


def dpo_config(params: TrainingParams, output_dir: Path, *, cuda: bool, bf16: bool, evaluate: bool) -> Any:
    """TRL's ``DPOConfig`` for these parameters; on a machine without CUDA it trains on the CPU in float32. With
    ``evaluate`` and ``params.eval_steps`` it also evaluates on the test rows every that many steps."""
    config_class = importlib.import_module("trl").DPOConfig
    # transformers 5.x renamed gradient checkpointing; the old name still works there, with a warning.
    names = {f.name for f in dataclasses.fields(config_class)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    every = params.eval_steps if evaluate else None
    return config_class(
        output_dir=str(output_dir),
        beta=params.beta,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.per_device_batch,
        per_device_eval_batch_size=params.per_device_batch,
        gradient_accumulation_steps=params.grad_accum,
        max_length=params.max_length,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps or -1,
        warmup_steps=params.warmup_steps,
        logging_steps=params.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if every else "no",
        eval_steps=every,
        use_cpu=not cuda,
        bf16=bf16,
        **{checkpointing: cuda},  # memory on a GPU; only slower on the CPU
        save_strategy="no",  # the model is saved once, at the end
        report_to=[],
        disable_tqdm=True,  # the command line draws its own bar from the callbacks
    )


def is_main_process() -> bool:
    """False in the other processes of a distributed launch (their ``RANK`` is set and not 0)."""
    return os.environ.get("RANK", "0") == "0"


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` did: the run it recorded (0 in the other processes) and the model the app registered."""

    run_id: int
    model: dict[str, Any] | None = None  # {"id", "name", ...} as the app answered; None when nothing was registered


def train(
    client: AppClient,
    *,
    snapshot: str,
    model: str,
    output_dir: Path,
    params: TrainingParams,
    name: str = "",
    progress: Progress | None = None,
    report_every_s: float = 10.0,
) -> TrainResult:
    """Train ``model`` with DPO on the snapshot, save it to ``output_dir`` and register it in the project's model
    registry as ``name`` (default: the output directory's name).

    The run is recorded before the download, so a refused file or a crash shows in the app as a failed run with
    its error; any exception is reported that way and raised again.
    """
    progress = progress or SilentProgress()
    info = client.snapshot(snapshot)
    progress.stage(f"snapshot {info.id} of {info.project}: {info.row_count} pairs, {info.format}")
    output_dir = output_dir.resolve()
    main = is_main_process()
    run_id = 0
    if main:  # under a distributed launcher (torchrun, accelerate) every process trains, only the first reports
        run_id = client.create_run(
            snapshot_id=info.id,
            base_model=model,
            output_dir=str(output_dir),
            params=params,
            environment=environment_facts(),
        )
        progress.stage(f"training run {run_id} recorded")
    reporter = Reporter(client, run_id, every_s=report_every_s, enabled=main)
    try:
        with tempfile.TemporaryDirectory(prefix="prefstudio-train-") as tmp:
            work = Path(tmp)
            path = client.download(info, work / f"snapshot-{info.id}.jsonl", on_progress=progress.download)
            progress.stage(f"sha256 {info.sha256[:12]}… verified")
            _train_on(
                split_snapshot(path, work),
                work,
                model=model,
                output_dir=output_dir,
                params=params,
                reporter=reporter,
                progress=progress,
            )
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        reporter.finish("failed", error)
        raise
    checkpoint = None
    if main:
        progress.stage("hashing the weights")
        checkpoint = {
            "name": name or output_dir.name,
            "uri": str(output_dir),
            "weights_sha256": weights_digest(output_dir),
            "parent_weights_sha256": weights_digest(model),  # None for a hub name
        }
    if not reporter.finish("done", model=checkpoint):
        log.warning("the model is saved in %s, but the app was not told that run %d is done", output_dir, run_id)
    registered = (reporter.answer or {}).get("model")
    return TrainResult(run_id, registered if isinstance(registered, dict) else None)


def _train_on(
    held: HeldOut,
    work: Path,
    *,
    model: str,
    output_dir: Path,
    params: TrainingParams,
    reporter: Reporter,
    progress: Progress,
) -> None:
    progress.stage("loading trl, transformers and torch")
    # Local: the [train] extra, seconds to import, only once training starts (see the module's docstring).
    import torch
    from datasets import load_dataset
    from transformers import AutoTokenizer, PrinterCallback, ProgressCallback

    if held.train_rows == 0:
        raise TrainingError("The snapshot has no pairs to train on")
    files = {"train": str(held.train)} | ({"test": str(held.test)} if held.test else {})
    data = load_dataset("json", data_files=files, cache_dir=str(work / "datasets"))
    reporter.add({"step": 0, "train_pairs": held.train_rows, "eval_pairs": held.test_rows})
    cuda = torch.cuda.is_available()
    config = dpo_config(
        params, output_dir, cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported(), evaluate=held.test is not None
    )
    progress.stage(f"loading {model} ({'cuda' if cuda else 'cpu'})")
    tokenizer = AutoTokenizer.from_pretrained(model)
    trainer = importlib.import_module("trl").DPOTrainer(
        model=model,
        args=config,
        train_dataset=data["train"],
        eval_dataset=data["test"] if held.test else None,
        processing_class=tokenizer,
        callbacks=[make_callback(reporter, progress)],
    )
    for quiet in (PrinterCallback, ProgressCallback):  # our callback reports and draws progress instead
        trainer.remove_callback(quiet)
    held_out = f", {held.test_rows} held out" if held.test else ", none held out (no test rows)"
    progress.stage(f"training on {held.train_rows} pairs{held_out}")
    trainer.train()
    if held.test and not _evaluated_at(trainer.state.log_history, trainer.state.global_step):
        progress.stage(f"evaluating on {held.test_rows} held-out pairs")
        trainer.evaluate()  # logs eval_loss, eval_rewards/accuracies, … through the callback
    reporter.flush()
    progress.stage(f"saving to {output_dir}")
    trainer.save_model(str(output_dir))  # writes on the main process only
    if is_main_process():
        tokenizer.save_pretrained(str(output_dir))


def _evaluated_at(history: list[dict[str, Any]], step: int) -> bool:
    """Whether the periodic evaluation already ran at the last step (no second, identical figure)."""
    return any("eval_loss" in entry and entry.get("step") == step for entry in history)
