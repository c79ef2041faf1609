"""`prefstudio train`: the DPO training worker (needs the ``[train]`` extra: trl, transformers, datasets, torch)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.training import trainer
from app.training.client import AppClient, TrainingError
from app.training.schemas import TrainingParams

console = Console(stderr=True)
DEFAULTS = TrainingParams()


class BarProgress:
    """Download and training bars on stderr, and the latest loss and reward accuracy beside the steps."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.download_task: TaskID | None = None
        self.train_task: TaskID | None = None

    def stage(self, text: str) -> None:
        self.bars.console.print(f"[dim]·[/dim] {text}")

    def download(self, done: int, total: int) -> None:
        if self.download_task is None:
            self.download_task = self.bars.add_task("download", total=total or None, metrics="")
        self.bars.update(self.download_task, completed=done)

    def step(self, done: int, total: int, entry: dict[str, Any] | None) -> None:
        if self.train_task is None:
            self.train_task = self.bars.add_task("train", total=total or None, metrics="")
        fields: dict[str, Any] = {"completed": done, "total": total or None}
        held_out = (entry or {}).get("eval_rewards/accuracies")
        if isinstance(held_out, float):
            self.stage(f"step {done}: held-out reward accuracy {held_out:.3f}")
        if entry and isinstance(entry.get("loss"), float):
            accuracy = entry.get("rewards/accuracies")
            fields["metrics"] = f"loss {entry['loss']:.4f}" + (
                f" · reward acc {accuracy:.2f}" if isinstance(accuracy, float) else ""
            )
        self.bars.update(self.train_task, **fields)


def train_command(
    url: Annotated[str, typer.Option(envvar="PREFSTUDIO_URL", help="The app's base URL")] = "http://127.0.0.1:8000",
    token: Annotated[
        str, typer.Option(envvar="PREFSTUDIO_TOKEN", help="An export token of the project (or env PREFSTUDIO_TOKEN)")
    ] = "",
    snapshot: Annotated[str, typer.Option(help="Snapshot id, or 'latest' (the project's newest ready one)")] = "latest",
    model: Annotated[str, typer.Option(help="The SFT model to start from (a directory or a Hugging Face id)")] = "",
    output: Annotated[Path, typer.Option(help="Where the trained model and tokenizer are saved")] = Path("dpo-model"),
    beta: Annotated[float, typer.Option(help="DPO β")] = DEFAULTS.beta,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate")] = DEFAULTS.learning_rate,
    per_device_batch: Annotated[int, typer.Option(help="Pairs per device per step")] = DEFAULTS.per_device_batch,
    grad_accum: Annotated[
        int, typer.Option(help="Gradient accumulation (effective batch = per-device batch × this × devices)")
    ] = DEFAULTS.grad_accum,
    max_length: Annotated[int, typer.Option(help="Max tokens of prompt + answer")] = DEFAULTS.max_length,
    epochs: Annotated[int, typer.Option(help="Epochs, 1–3")] = DEFAULTS.epochs,
    warmup_steps: Annotated[int, typer.Option(help="Learning-rate warm-up steps")] = DEFAULTS.warmup_steps,
    logging_steps: Annotated[int, typer.Option(help="Report metrics every N steps")] = DEFAULTS.logging_steps,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N steps (overrides epochs)")] = None,
    eval_steps: Annotated[
        int | None, typer.Option(help="Also evaluate on the snapshot's test split every N steps (always at the end)")
    ] = None,
    name: Annotated[
        str, typer.Option(help="The trained model's name in the project's registry (default: the --output name)")
    ] = "",
) -> None:
    """Train an SFT model with DPO on a snapshot's train split and evaluate it on its test split; the run and its
    metrics appear on the project's Training page, the model is saved to --output and registered in the project's
    model registry. Runs unchanged under `accelerate launch` (only the first process reports)."""
    if not token:
        raise typer.BadParameter("an export token is needed: --token or env PREFSTUDIO_TOKEN", param_hint="--token")
    if not model:
        raise typer.BadParameter("the SFT model to start from", param_hint="--model")
    try:
        params = TrainingParams(
            beta=beta,
            learning_rate=learning_rate,
            per_device_batch=per_device_batch,
            grad_accum=grad_accum,
            max_length=max_length,
            epochs=epochs,
            warmup_steps=warmup_steps,
            logging_steps=logging_steps,
            max_steps=max_steps,
            eval_steps=eval_steps,
        )
    except ValidationError as exc:
        for error in exc.errors():
            option = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-")
            console.print(f"[red]error:[/red] {option}: {error['msg']}")
        raise typer.Exit(2) from exc
    try:
        import trl  # noqa: F401 - local: is the [train] extra installed? Fail before anything is recorded
    except ImportError as exc:
        console.print(f"[red]error:[/red] {exc}; install the training extra: pip install 'prefstudio[train]'")
        raise typer.Exit(1) from exc

    result = _train_with_bars(url, token, snapshot=snapshot, model=model, output=output, params=params, name=name)
    console.print(finished_line(result, output.resolve()), soft_wrap=True, highlight=False)


def _train_with_bars(
    url: str, token: str, *, snapshot: str, model: str, output: Path, params: TrainingParams, name: str
) -> trainer.TrainResult:
    logging.basicConfig(level=logging.WARNING, handlers=[RichHandler(console=console, show_path=False)], force=True)
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
    )
    client = AppClient(url, token)
    try:
        with Progress(*columns, console=console) as bars:
            return trainer.train(
                client,
                snapshot=snapshot,
                model=model,
                output_dir=output,
                params=params,
                name=name,
                progress=BarProgress(bars),
            )
    except (TrainingError, httpx.HTTPError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        client.close()


def finished_line(result: trainer.TrainResult, output: Path) -> str:
    """The command's last line: the run, where the model is, and the name the registry gave it."""
    if not result.run_id:
        return f"done (another process reports the run); model saved to {output}"
    line = f"run {result.run_id} done; model saved to {output}"
    if result.model is None:
        return f"{line}; not registered (the app did not confirm)"
    return f"{line}; registered as model {result.model.get('name')!r} (id {result.model.get('id')})"
