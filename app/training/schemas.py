"""Training runs as the trainer reports them, and the hyperparameters of a DPO run."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.kit.schemas import MAX_ROW_ID, Schema

MAX_ENTRIES_PER_REQUEST = 1000
MAX_KEYS_PER_ENTRY = 64
MAX_INT64 = 2**63 - 1


class TrainingParams(BaseModel):
    """DPO hyperparameters. The defaults are the command's defaults; the effective batch is
    ``per_device_batch × grad_accum`` (× the number of devices)."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(0.1, gt=0, le=100, description="DPO β: how far the policy may move from the reference")
    learning_rate: float = Field(5e-7, gt=0, le=1, description="peak learning rate")
    per_device_batch: int = Field(4, ge=1, le=4096, description="pairs per device per forward pass")
    grad_accum: int = Field(8, ge=1, le=4096, description="gradient accumulation steps")
    max_length: int = Field(2048, ge=16, le=1_000_000, description="tokens of prompt + answer, truncated beyond")
    epochs: int = Field(1, ge=1, le=3, description="passes over the snapshot (1–3)")
    warmup_steps: int = Field(100, ge=0, le=1_000_000, description="linear warm-up of the learning rate")
    logging_steps: int = Field(10, ge=1, le=1_000_000, description="report metrics every N optimizer steps")
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="stop after N steps (overrides epochs)")
    eval_steps: int | None = Field(
        None, ge=1, le=1_000_000, description="also evaluate on the held-out rows every N steps (always at the end)"
    )

    @property
    def effective_batch(self) -> int:
        return self.per_device_batch * self.grad_accum


class RunCreate(BaseModel):
    """What the trainer says about itself when it starts."""

    model_config = ConfigDict(extra="forbid")

    snapshot_id: int = Field(ge=1, le=MAX_ROW_ID)
    base_model: str = Field(min_length=1, max_length=1000, description="the SFT model trained from (path or id)")
    output_dir: str = Field("", max_length=1000, description="where the trained model is saved")
    host: str = Field("", max_length=200, description="the machine the trainer runs on")
    params: TrainingParams = Field(default_factory=TrainingParams)
    # Versions, devices, the effective batch: free-form facts shown next to the parameters.
    environment: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="library versions and devices, shown with the parameters"
    )


class CheckpointIn(BaseModel):
    """The model a finished run saved, for the project's model registry."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="its name in the registry (-2, -3… added if taken)")
    uri: str = Field(min_length=1, max_length=1000, description="where it was saved (a directory or a hub name)")
    weights_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="the digest of its weights files (app.registry.weights)"
    )
    parent_weights_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="the digest of the base model's weights, where the trainer read them from a local directory",
    )


MetricValue = float | int | str | None


class RunUpdate(BaseModel):
    """Log entries to append (the trainer's ``on_log`` dictionaries with their step) and/or a new state."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[dict[str, MetricValue]] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES_PER_REQUEST,
        description='log entries, each with its "step": {"step": 10, "loss": 0.69, "rewards/chosen": 0.01, ...}',
    )
    state: Literal["running", "done", "failed"] | None = Field(None, description="done or failed ends the run")
    error: str | None = Field(None, max_length=20_000, description="with state failed: what went wrong")
    model: CheckpointIn | None = Field(None, description="with state done: the saved model, registered in the project")

    @field_validator("metrics")
    @classmethod
    def _entries(cls, entries: list[dict[str, MetricValue]]) -> list[dict[str, MetricValue]]:
        for n, entry in enumerate(entries):
            step = entry.get("step")
            if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                raise ValueError(f"entry {n}: 'step' must be a whole number ≥ 0")
            if len(entry) > MAX_KEYS_PER_ENTRY:
                raise ValueError(f"entry {n}: at most {MAX_KEYS_PER_ENTRY} keys")
            if step > MAX_INT64:
                raise ValueError(f"entry {n}: 'step' is larger than {MAX_INT64}")
            for key, value in entry.items():
                if not key or len(key) > 100:
                    raise ValueError(f"entry {n}: keys are 1–100 characters")
                # A whole number no 64-bit integer (or finite float) holds is no count or loss: refused, not kept.
                if isinstance(value, int) and not -MAX_INT64 - 1 <= value <= MAX_INT64:
                    raise ValueError(f"entry {n}: {key!r} is outside the 64-bit range")
                if isinstance(value, float) and not math.isfinite(value):
                    entry[key] = None  # a diverged loss is a fact to show, JSON cannot carry NaN
                elif isinstance(value, str) and len(value) > 200:
                    raise ValueError(f"entry {n}: {key!r} is longer than 200 characters")
        return entries

    @model_validator(mode="after")
    def _error_only_when_failed(self) -> RunUpdate:
        if self.error is not None and self.state != "failed":
            raise ValueError("'error' goes with state 'failed'")
        if self.model is not None and self.state != "done":
            raise ValueError("'model' goes with state 'done'")
        if not self.metrics and self.state is None:
            raise ValueError("nothing to update: send 'metrics' and/or 'state'")
        return self


class RunCreated(BaseModel):
    id: int
    state: str


class RegisteredRef(Schema):
    """The registry's entry for a run's checkpoint."""

    id: int
    name: str
    uri: str
    weights_sha256: str | None
    parent_id: int | None


class RunOut(Schema):
    id: int
    project: str
    snapshot_id: int
    state: str
    base_model: str
    output_dir: str
    host: str
    params: dict[str, Any]
    metrics: list[dict[str, Any]]
    final: dict[str, Any] = Field(description="the latest value of each metric")
    error: str | None
    model: RegisteredRef | None = Field(None, description="the checkpoint registered when the run finished")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
