"""The DPO training worker: download a snapshot (sha256-checked), train with TRL's ``DPOTrainer``, report to the app.

Runs on the training machine, not in the app: it talks to the app only over HTTP with the project's export
token. torch, transformers, datasets and trl (the ``[train]`` extra) are imported when training starts, so the
app and the rest of this module work without them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata as md
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from app.training.schemas import TrainingParams

log = logging.getLogger("prefstudio.train")

CHUNK = 1024 * 1024


class TrainingError(Exception):
    """Something the user can act on; its text is shown and reported to the app as the run's error."""


class SnapshotMismatch(TrainingError):
    """What was downloaded is not the snapshot the app describes."""


class AppRequestError(TrainingError):
    def __init__(self, status_code: int, detail: Any, url: str) -> None:
        super().__init__(f"{url}: HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class SnapshotInfo:
    id: int
    project: str
    name: str
    format: str
    row_count: int
    sha256: str
    size_bytes: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotInfo:
        try:
            return cls(
                id=int(data["id"]),
                project=str(data.get("project", "")),
                name=str(data.get("name") or ""),
                format=str(data.get("format", "")),
                row_count=int(data.get("row_count") or 0),
                sha256=str(data["sha256"] or ""),
                size_bytes=int(data.get("size_bytes") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"The app described the snapshot in an unexpected way: {data!r}") from exc


class Progress(Protocol):
    """What the worker tells its user (the command line draws bars from it)."""

    def stage(self, text: str) -> None: ...
    def download(self, done: int, total: int) -> None: ...
    def step(self, done: int, total: int, entry: dict[str, Any] | None) -> None: ...


class SilentProgress:
    def stage(self, text: str) -> None:
        log.info(text)

    def download(self, done: int, total: int) -> None:
        pass

    def step(self, done: int, total: int, entry: dict[str, Any] | None) -> None:
        pass


class AppClient:
    """The app's JSON API as the worker uses it: snapshots in, training runs out (Bearer token)."""

    def __init__(self, url: str, token: str, *, http: httpx.Client | None = None, timeout: float = 30.0) -> None:
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:500]
        raise AppRequestError(response.status_code, detail, str(response.request.url))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._check(self.http.request(method, path, **kwargs)).json()

    def snapshot(self, ref: str) -> SnapshotInfo:
        """A snapshot's record; ``ref`` is an id or ``latest`` (the newest ready snapshot of the token's project)."""
        return SnapshotInfo.from_json(self._json("GET", f"/api/v1/snapshots/{ref}"))

    def download(
        self, info: SnapshotInfo, dest: Path, *, on_progress: Callable[[int, int], None] | None = None
    ) -> Path:
        """Stream the snapshot's file to ``dest``, hashing it on the way; refuse it unless its sha256 is the one
        the app recorded (and sent in ``X-Snapshot-SHA256``)."""
        digest = hashlib.sha256()
        size = 0
        with self.http.stream("GET", f"/api/v1/snapshots/{info.id}.jsonl") as response:
            if not response.is_success:
                response.read()
                self._check(response)
            header = response.headers.get("x-snapshot-sha256", "")
            with open(dest, "wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if on_progress is not None:
                        on_progress(size, info.size_bytes)
        actual = digest.hexdigest()
        expected = {info.sha256.lower(), header.lower()} - {""}
        if not expected:
            raise SnapshotMismatch(f"Snapshot {info.id}: the app gave no sha256 to check the file against")
        if expected != {actual}:
            dest.unlink(missing_ok=True)
            raise SnapshotMismatch(
                f"Snapshot {info.id}: sha256 mismatch: downloaded {size} bytes hashing to {actual}, "
                f"expected {' / '.join(sorted(expected))}; refusing to train on it"
            )
        return dest

    def create_run(
        self,
        *,
        snapshot_id: int,
        base_model: str,
        output_dir: str,
        params: TrainingParams,
        environment: dict[str, str],
    ) -> int:
        body = {
            "snapshot_id": snapshot_id,
            "base_model": base_model,
            "output_dir": output_dir,
            "host": platform.node()[:200],
            "params": params.model_dump(),
            "environment": environment,
        }
        return int(self._json("POST", "/api/v1/training-runs", json=body)["id"])

    def update_run(
        self,
        run_id: int,
        *,
        metrics: list[dict[str, Any]] | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"metrics": metrics or []}
        if state is not None:
            body["state"] = state
        if error is not None:
            body["error"] = error[:20_000]
        self._json("PATCH", f"/api/v1/training-runs/{run_id}", json=body)


def log_entry(logs: dict[str, Any], *, step: int) -> dict[str, Any]:
    """The trainer's ``on_log`` dictionary as a report entry: its numbers (NaN kept as None) and the step."""
    entry: dict[str, Any] = {"step": int(step)}
    for key, value in logs.items():
        if isinstance(value, bool) or key == "step":
            continue
        if isinstance(value, int | float):
            entry[key] = value if math.isfinite(value) else None
        elif hasattr(value, "item"):  # a 0-d tensor or numpy scalar
            number = float(value.item())
            entry[key] = number if math.isfinite(number) else None
    return entry


@dataclass
class Reporter:
    """Sends log entries to the app in batches. A failed report never stops training: it is logged as a warning
    and its entries are kept for the next attempt (the app skips entries it already has)."""

    client: AppClient
    run_id: int
    every_s: float = 10.0
    batch: int = 50
    keep: int = 5000
    enabled: bool = True
    clock: Callable[[], float] = time.monotonic
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    failures: int = 0
    _last: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._last = self.clock()

    def add(self, entry: dict[str, Any]) -> None:
        self.pending.append(entry)
        if len(self.pending) > self.keep:  # the app has been away for long: keep the newest
            del self.pending[: len(self.pending) - self.keep]
        if len(self.pending) >= self.batch or self.clock() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> bool:
        """Send what is pending; False (and a warning) if the app could not be reached or refused."""
        self._last = self.clock()
        if not self.enabled:
            self.pending.clear()
        if not self.pending:
            return True
        batch = self.pending[:1000]
        try:
            self.client.update_run(self.run_id, metrics=batch)
        except (httpx.HTTPError, TrainingError) as exc:
            self.failures += 1
            log.warning("could not report %d log entries of run %d (will retry): %s", len(batch), self.run_id, exc)
            return False
        del self.pending[: len(batch)]
        self.sent += len(batch)
        return not self.pending or self.flush()

    def finish(self, state: str, error: str | None = None, *, tries: int = 3, pause_s: float = 2.0) -> bool:
        """Send the last entries and the final state, trying a few times: a run left "running" misleads."""
        if not self.enabled:
            return True
        for attempt in range(tries):
            try:
                self.client.update_run(self.run_id, metrics=self.pending[:1000], state=state, error=error)
                self.sent += len(self.pending[:1000])
                self.pending.clear()
                return True
            except AppRequestError as exc:
                if 400 <= exc.status_code < 500 and exc.status_code not in (408, 429):
                    log.warning("the app refused the end of run %d: %s", self.run_id, exc)
                    return False
                log.warning("could not report the end of run %d (try %d): %s", self.run_id, attempt + 1, exc)
            except (httpx.HTTPError, TrainingError) as exc:
                log.warning("could not report the end of run %d (try %d): %s", self.run_id, attempt + 1, exc)
            if attempt + 1 < tries:
                time.sleep(pause_s * (attempt + 1))
        return False


def _make_callback(reporter: Reporter, progress: Progress) -> Any:
    """A ``transformers.TrainerCallback`` that forwards each ``on_log`` to the reporter and each step to the
    progress display (main process only). Built at run time: transformers is an optional dependency."""
    base = importlib.import_module("transformers").TrainerCallback

    def on_step_end(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            progress.step(state.global_step, state.max_steps, None)

    def on_log(self: Any, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if state.is_world_process_zero and logs:
            entry = log_entry(logs, step=state.global_step)
            reporter.add(entry)
            progress.step(state.global_step, state.max_steps, entry)

    return type("ReportCallback", (base,), {"on_step_end": on_step_end, "on_log": on_log})()


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
    return facts


def dpo_config(params: TrainingParams, output_dir: Path, *, cuda: bool, bf16: bool) -> Any:
    """TRL's ``DPOConfig`` for these parameters; on a machine without CUDA it trains on the CPU in float32."""
    config_class = importlib.import_module("trl").DPOConfig
    # transformers 5.x renamed gradient checkpointing; the old name still works there, with a warning.
    names = {f.name for f in dataclasses.fields(config_class)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return config_class(
        output_dir=str(output_dir),
        beta=params.beta,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.per_device_batch,
        gradient_accumulation_steps=params.grad_accum,
        max_length=params.max_length,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps or -1,
        warmup_steps=params.warmup_steps,
        logging_steps=params.logging_steps,
        logging_first_step=True,
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


def train(
    client: AppClient,
    *,
    snapshot: str,
    model: str,
    output_dir: Path,
    params: TrainingParams,
    progress: Progress | None = None,
    report_every_s: float = 10.0,
) -> int:
    """Train ``model`` with DPO on the snapshot and save the result to ``output_dir``; returns the run's id.

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
                path, work, model=model, output_dir=output_dir, params=params, reporter=reporter, progress=progress
            )
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        reporter.finish("failed", error)
        raise
    if not reporter.finish("done"):
        log.warning("the model is saved in %s, but the app was not told that run %d is done", output_dir, run_id)
    return run_id


def _train_on(
    path: Path,
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

    dataset = load_dataset("json", data_files=str(path), split="train", cache_dir=str(work / "datasets"))
    if len(dataset) == 0:
        raise TrainingError("The snapshot has no pairs to train on")
    cuda = torch.cuda.is_available()
    config = dpo_config(params, output_dir, cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())
    progress.stage(f"loading {model} ({'cuda' if cuda else 'cpu'})")
    tokenizer = AutoTokenizer.from_pretrained(model)
    trainer = importlib.import_module("trl").DPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[_make_callback(reporter, progress)],
    )
    for quiet in (PrinterCallback, ProgressCallback):  # our callback reports and draws progress instead
        trainer.remove_callback(quiet)
    progress.stage(f"training on {len(dataset)} pairs")
    trainer.train()
    reporter.flush()
    progress.stage(f"saving to {output_dir}")
    trainer.save_model(str(output_dir))  # writes on the main process only
    if is_main_process():
        tokenizer.save_pretrained(str(output_dir))
