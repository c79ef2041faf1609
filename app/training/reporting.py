"""Reporting to the app while training: log entries in batches, the final state, and the trainer callback."""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from app.training.client import AppClient, AppRequestError, TrainingError

log = logging.getLogger("prefstudio.train")


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
    answer: dict[str, Any] | None = None  # the app's answer to the final report
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

    def finish(
        self,
        state: str,
        error: str | None = None,
        *,
        model: dict[str, Any] | None = None,
        tries: int = 3,
        pause_s: float = 2.0,
    ) -> bool:
        """Send the last entries and the final state (with ``model``, the checkpoint to register), trying a few
        times: a run left "running" misleads. The app's answer is kept in ``answer``."""
        if not self.enabled:
            return True
        for attempt in range(tries):
            try:
                self.answer = self.client.update_run(
                    self.run_id, metrics=self.pending[:1000], state=state, error=error, model=model
                )
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


def make_callback(reporter: Reporter, progress: Progress) -> Any:
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
