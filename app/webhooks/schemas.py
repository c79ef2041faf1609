"""What the webhook API reads and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.kit.schemas import Schema, StoredText
from app.webhooks.events import EVENTS

# The names of app.webhooks.events.EVENTS (a test keeps the two alike).
Event = Literal[
    "snapshot.ready", "training_run.finished", "training_run.failed", "project.completed", "adjudication.queue"
]
MAX_THRESHOLD = 1_000_000


def _canonical(events: list[str]) -> list[str]:
    """Each event once, in the order the app lists them."""
    return [event for event in EVENTS if event in events]


class WebhookIn(BaseModel):
    """A webhook to create: where to POST, which events, and N for ``adjudication.queue``."""

    model_config = ConfigDict(extra="forbid")
    url: StoredText = Field(min_length=1, max_length=2000)
    events: list[Event] = Field(min_length=1, max_length=len(EVENTS))
    active: bool = True
    adjudication_threshold: int = Field(default=10, ge=0, le=MAX_THRESHOLD)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _canonical(value)


class WebhookUpdate(BaseModel):
    """Fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")
    url: StoredText | None = Field(default=None, min_length=1, max_length=2000)
    events: list[Event] | None = Field(default=None, min_length=1, max_length=len(EVENTS))
    active: bool | None = None
    adjudication_threshold: int | None = Field(default=None, ge=0, le=MAX_THRESHOLD)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return _canonical(value) if value is not None else None


class WebhookOut(Schema):
    """A webhook as the API shows it: never its secret (that only once, when it is made or rotated)."""

    id: int
    url: str
    events: list[str]
    active: bool
    adjudication_threshold: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret; shown this once (rotate it to get a new one)")


class SecretOut(BaseModel):
    id: int
    secret: str = Field(description="The new signing secret; shown this once. The old one stops signing at once.")


class DeliveryOut(Schema):
    """One delivery: the event, where it stands, and every attempt (time, status code, error)."""

    id: int
    guid: str = Field(description="The id the receiver sees (body `id`, header X-Prefstudio-Delivery)")
    event: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    history: list[dict[str, Any]]
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None
