from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow

SNAPSHOT_STATES = ("pending", "ready", "failed")
TRAINING_STATES = ("running", "done", "failed")


class Snapshot(Base):
    """A frozen export: the file of pairs (written to a temporary name, then renamed), its sha256 and row count,
    the filter that chose the pairs and a data card. Once ``ready`` nothing about it changes."""

    __tablename__ = "snapshot"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'ready', 'failed')", name="state_valid"),
        Index("ix_snapshot_project_created_at", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), default=None)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"), default=None)
    name: Mapped[str] = mapped_column(String(200), default="")
    format: Mapped[str] = mapped_column(String(16), default="standard")
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    card: Mapped[str] = mapped_column(Text, default="")  # the data card, markdown
    # Files beside the main one: [{name, kind ("ties" | "dimension"), dimension, rows, bytes, sha256, file_name}];
    # declared when the snapshot is recorded (rows 0, no file), filled in when it is written.
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    rounds: Mapped[list[int]] = mapped_column(JSONType, default=list)  # the candidate rounds its pairs came from
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class TrainingRun(Base):
    """A DPO run of the training worker on one snapshot, as it reports itself: state, parameters, metrics."""

    __tablename__ = "training_run"
    __table_args__ = (
        CheckConstraint("state IN ('running', 'done', 'failed')", name="state_valid"),
        Index("ix_training_run_snapshot_id", "snapshot_id"),
        Index("ix_training_run_project_id", "project_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="SET NULL"), default=None)
    state: Mapped[str] = mapped_column(String(16), default="running")
    base_model: Mapped[str] = mapped_column(String(1000), default="")
    output_dir: Mapped[str] = mapped_column(String(1000), default="")
    host: Mapped[str] = mapped_column(String(200), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The trainer's log history: [{"step": 10, "loss": ..., "rewards/chosen": ..., ...}, ...]
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AgreementCache(Base):
    """A project's agreement figures as last computed by the worker, and what they were computed from."""

    __tablename__ = "agreement_cache"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # A fingerprint of the judgments the figures saw (count, newest change); a different one means stale.
    source: Mapped[str] = mapped_column(String(200), default="")
    compute_ms: Mapped[float] = mapped_column(default=0.0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
