"""Judge settings of a project (stored as JSON in ``project.judge``) and the judge API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.generation.schemas import MASKED_KEY, HealthOut, normalize_base_url, origin_of
from app.judge.rubric import DEFAULT_RUBRIC, prompt_version


class JudgeServer(BaseModel):
    """One judge: a model on an OpenAI-compatible (vLLM) server."""

    model_config = ConfigDict(extra="forbid")
    base_url: str
    model: str = Field(min_length=1, max_length=200)
    api_key: str | None = Field(default=None, max_length=500)
    # The server (scheme, host and port) the key was entered for: it is sent to no other.
    api_key_origin: str | None = None
    label: str = Field(default="", max_length=100)

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        return normalize_base_url(url)

    @model_validator(mode="after")
    def _key_belongs_to_server(self) -> JudgeServer:
        if not self.api_key:
            self.api_key_origin = None
        return self

    def key(self) -> str | None:
        """The key, only for the server it was entered for."""
        return self.api_key if self.api_key and self.api_key_origin == origin_of(self.base_url) else None


class JudgeSettings(BaseModel):
    """Which models judge, with which rubric, how hard the servers are pressed."""

    model_config = ConfigDict(extra="forbid")
    judges: list[JudgeServer] = Field(default_factory=list, max_length=8)
    rubric: str = Field(default="", max_length=20_000, description="empty: the built-in rubric")
    mode: Literal["chat", "completion"] = "chat"
    concurrency: int = Field(default=64, ge=1, le=1024, description="requests in flight per judge")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_cap_s: float = Field(default=20.0, ge=0, le=600)
    rationale: bool = Field(default=False, description="also ask for a short free-text rationale")
    max_candidate_chars: int = Field(default=4000, ge=20, le=200_000)

    def effective_rubric(self) -> str:
        return self.rubric.strip() or DEFAULT_RUBRIC

    @property
    def prompt_version(self) -> str:
        return prompt_version(self.effective_rubric())

    def public(self) -> dict[str, Any]:
        """The settings with keys masked, the effective rubric's version and the built-in rubric."""
        data = self.model_dump()
        for judge in data["judges"]:
            judge["api_key"] = MASKED_KEY if judge["api_key"] else None
        data["prompt_version"] = self.prompt_version
        data["default_rubric"] = DEFAULT_RUBRIC
        return data


class JudgeHealthOut(HealthOut):
    """One judge's server as the health check found it (``problem``: its model is not served there, say)."""

    judge: str = Field(description='"model@base_url"')
    model: str


class JudgeJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    judge: str | None = Field(default=None, description='one judge ("model@base_url"); default: every judge')


class SuggestionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    item_id: int
    round: int
    dimension: str
    judge: str
    model: str
    base_url: str
    prompt_version: str
    kind: str
    chosen_candidate_id: int | None
    rejected_candidate_id: int | None
    ranking: dict[str, Any] | None
    confidence: float | None
    orders: list[dict[str, Any]]
    rationale: str
    job_id: int | None
    created_at: datetime
