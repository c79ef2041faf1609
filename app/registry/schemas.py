"""What the registry reads and answers: a model added, an endpoint bound, a model with its lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.generation.schemas import HealthOut, normalize_base_url
from app.kit.schemas import RowId, StoredText

Kind = Literal["sft", "checkpoint", "other"]
SHA256 = r"^[0-9a-f]{64}$"


def _url(url: str | None) -> str | None:
    return normalize_base_url(url) if url and url.strip() else None


def _stripped_name(value: str) -> str:
    if not value.strip():
        raise ValueError("a model needs a name")
    return value.strip()


class Endpoint(BaseModel):
    """A serving endpoint: a vLLM server and the name it serves the model under; both or neither."""

    base_url: str | None = None
    served_name: StoredText | None = Field(default=None, max_length=200)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _url(value)

    @field_validator("served_name")
    @classmethod
    def _served_name(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Endpoint:
        if (self.base_url is None) != (self.served_name is None):
            raise ValueError("an endpoint needs both a server URL and the name the model is served under")
        return self


class ModelIn(Endpoint):
    """A model to register. ``weights_sha256``: the digest taken where the weights are (the app never reads ``uri``)."""

    model_config = ConfigDict(extra="forbid")
    name: StoredText = Field(min_length=1, max_length=200)
    kind: Kind = "other"
    uri: StoredText = Field(default="", max_length=1000)
    parent_id: RowId | None = None
    snapshot_id: RowId | None = None
    training_run_id: RowId | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    weights_sha256: str | None = Field(default=None, pattern=SHA256)

    @field_validator("name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return _stripped_name(value)

    @field_validator("weights_sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class ModelUpdate(Endpoint):
    """A new name, a weights digest, or a new endpoint binding (send both fields null to unbind). Omitted fields
    stay."""

    model_config = ConfigDict(extra="forbid")
    name: StoredText | None = Field(default=None, min_length=1, max_length=200)
    weights_sha256: str | None = Field(default=None, pattern=SHA256)

    @field_validator("name")
    @classmethod
    def _new_name(cls, value: str | None) -> str | None:
        return _stripped_name(value) if value is not None else None

    @field_validator("weights_sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    project: str
    name: str
    kind: str
    uri: str
    parent_id: int | None
    parent_name: str | None
    children: list[int] = Field(default_factory=list, description="ids of the models trained from this one")
    snapshot_id: int | None
    snapshot_sha256: str | None
    training_run_id: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    weights_sha256: str | None
    base_url: str | None
    served_name: str | None
    created_at: datetime


class ModelHealthOut(BaseModel):
    model_id: int
    bound: bool = Field(description="whether the model has an endpoint; unbound models are not checked")
    servers: list[HealthOut] = Field(default_factory=list)
