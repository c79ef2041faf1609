"""Shared pydantic bases."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]] | dict[str, object]


class Message(BaseModel):
    detail: str
