"""Generation settings of a project (stored as JSON on the project) and job requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def normalize_base_url(url: str) -> str:
    """``http://host:8000/v1/`` → ``http://host:8000``; refuses anything but http(s)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.removesuffix("/v1")


class ModelChoice(BaseModel):
    """One model of the "per_model" strategy, optionally on its own server."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return normalize_base_url(url) if url and url.strip() else None


class GenerationSettings(BaseModel):
    """How candidates are sampled from an OpenAI-compatible (vLLM) server."""

    model_config = ConfigDict(extra="forbid")
    base_urls: list[str] = Field(default_factory=list, max_length=16)
    model: str = Field(default="", max_length=200)
    api_key: str | None = Field(default=None, max_length=500)
    mode: Literal["chat", "completion"] = "chat"
    temperature: float = Field(default=1.0, ge=0, le=5)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    stop: list[str] = Field(default_factory=list, max_length=8)
    # n_seeds: one request with n=k (one request seed; vLLM samples k distinct sequences from it);
    # temperature_ladder: k requests, temperatures[i] and seed+i; per_model: one candidate per model.
    strategy: Literal["n_seeds", "temperature_ladder", "per_model"] = "n_seeds"
    temperatures: list[float] = Field(default_factory=lambda: [0.6, 0.9, 1.2, 1.5], max_length=4)
    models: list[ModelChoice] = Field(default_factory=list, max_length=4)
    seed: int = Field(default=1234, ge=0, le=2**31 - 1)
    concurrency: int = Field(default=64, ge=1, le=1024, description="requests in flight per base URL")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_cap_s: float = Field(default=20.0, ge=0, le=600)
    max_consecutive_failures: int = Field(default=20, ge=1, le=10_000)

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [normalize_base_url(u) for u in urls if u.strip()]

    def problems(self, k: int) -> list[str]:
        """What keeps these settings from generating k candidates (empty when ready)."""
        found = []
        if not self.base_urls and not (self.strategy == "per_model" and all(m.base_url for m in self.models)):
            found.append("no vLLM base URL configured")
        if self.strategy != "per_model" and not self.model:
            found.append("no model name configured")
        if self.strategy == "temperature_ladder" and len(self.temperatures) < k:
            found.append(f"the temperature ladder needs {k} temperatures")
        if self.strategy == "per_model" and len(self.models) < k:
            found.append(f"the per-model strategy needs {k} models")
        return found

    def public(self) -> dict[str, Any]:
        """The settings without the API key (for pages and JSON)."""
        data = self.model_dump()
        data["api_key"] = "••••" if self.api_key else None
        return data


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selection: Literal["missing", "ids", "all_bad"] = "missing"
    item_ids: list[int] = Field(default_factory=list, max_length=100_000)


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    state: str
    progress_done: int
    progress_total: int
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class HealthOut(BaseModel):
    base_url: str
    ok: bool
    models: list[str] = Field(default_factory=list)
    max_model_len: int | None = None
    error: str | None = None
    latency_ms: float | None = None
