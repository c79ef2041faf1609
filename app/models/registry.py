from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow


class RegisteredModel(Base):
    """A model of a project's registry: the SFT model, a checkpoint a training run wrote, or one added by hand.

    ``uri`` says where the weights are (a path or a hub name); ``weights_sha256`` is the digest of its weights files
    (see ``app.registry.weights``), None when they were not readable where it was registered. A checkpoint names its
    ``parent`` (the model it was trained from), the ``snapshot`` it was trained on with that file's sha256 (kept when
    the snapshot is deleted), its ``training_run``, the run's ``params`` and final ``metrics``. ``base_url`` and
    ``served_name`` bind it to a serving endpoint (a vLLM server), the way generation settings name a server.
    """

    __tablename__ = "registered_model"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("kind IN ('sft', 'checkpoint', 'other')", name="registered_model_kind_valid"),
        Index("ix_registered_model_parent_id", "parent_id"),
        Index("ix_registered_model_snapshot_id", "snapshot_id"),
        Index("ix_registered_model_training_run_id", "training_run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="other")
    uri: Mapped[str] = mapped_column(String(1000), default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("registered_model.id", ondelete="SET NULL"), default=None)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshot.id", ondelete="SET NULL"), default=None)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_run.id", ondelete="SET NULL"), default=None
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    weights_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    base_url: Mapped[str | None] = mapped_column(String(500), default=None)
    served_name: Mapped[str | None] = mapped_column(String(200), default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
