from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnClause

from app.models.base import Base, JSONType, UTCDateTime, utcnow

ITEM_STATUSES = ("pending", "ready")


class Item(Base):
    """One prompt (text or chat messages) of a project, with its candidates.

    ``claims`` counts live leases plus submitted judgments and is only changed while the item row is
    locked, so it never passes the project's overlap r; ``judgment_count`` counts submitted judgments.
    """

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("project_id", "prompt_hash"),
        UniqueConstraint("project_id", "external_id"),
        CheckConstraint("status IN ('pending', 'ready')", name="status_valid"),
        CheckConstraint("claims >= 0", name="claims_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # A string, or a list of {"role", "content"} messages.
    prompt: Mapped[Any] = mapped_column(JSONType)
    prompt_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # A gold item's expected judgment: {dimension: {"kind": "preference" | "tie" | "either", "chosen": position,
    # "rejected": position}} in canonical positions; None for ordinary items.
    gold: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    round: Mapped[int] = mapped_column(Integer, default=0)  # current candidate round
    claims: Mapped[int] = mapped_column(Integer, default=0)
    judgment_count: Mapped[int] = mapped_column(Integer, default=0)
    # Adaptive overlap: the judgments this item wants now (r_min ≤ target ≤ r_max), raised when they disagree;
    # None: the project's r_min (``overlap_min``, or ``overlap`` when overlap is not adaptive).
    target: Mapped[int | None] = mapped_column(Integer, default=None)
    # The judge's confidence on this item's current round (the mean over its dimensions, "unsure" counting 0);
    # None until a judge has answered. The "uncertain first" queue order reads it.
    judge_confidence: Mapped[float | None] = mapped_column(Float, default=None)
    # Left out of every export (the data explorer's bulk action), and sent to adjudication by an admin.
    excluded_from_export: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The import that added it (None for items made otherwise, and once the batch is gone).
    import_batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_batch.id", ondelete="SET NULL"), default=None
    )

    @property
    def is_chat(self) -> bool:
        return isinstance(self.prompt, list)


class Candidate(Base):
    """One response to an item; ``position`` is its canonical place (0-based) within its round."""

    __tablename__ = "candidate"
    __table_args__ = (
        UniqueConstraint("item_id", "round", "position"),
        CheckConstraint("position >= 0 AND position < 4", name="position_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    base_url: Mapped[str | None] = mapped_column(String(500), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    finish_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    # The registered model that wrote it (on-policy rounds, arenas) and that model's weights digest at the time.
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("registered_model.id", ondelete="SET NULL"), default=None, index=True
    )
    weights_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


# The queue scan: ready items of a project, fullest first, oldest first within a fill level.
Index("ix_item_queue", Item.project_id, Item.status, Item.claims.desc(), Item.id)
# "Uncertain first": fresh items (claims = 0) by the judge's confidence, in bands (unsure, not judged, confident).
Index("ix_item_uncertain", Item.project_id, Item.status, Item.claims, Item.judge_confidence, Item.id)
# Adaptive overlap: items reopened for more judgments and still open, fullest first. Complete items share their
# claim counts (r_min ≤ claims < r), so the queue index alone would walk past every one of them.
Index(
    "ix_item_reopened",
    Item.project_id,
    Item.status,
    Item.claims.desc(),
    Item.id,
    postgresql_where=text("target IS NOT NULL AND claims < target"),
    sqlite_where=text("target IS NOT NULL AND claims < target"),
)
# The agreement fingerprint: items and their candidate rounds (index-only), gold items (few) directly.
Index("ix_item_project_round", Item.project_id, Item.round)
# The explorer's import batch filter.
Index("ix_item_project_batch", Item.project_id, Item.import_batch_id)
Index(
    "ix_item_project_gold",
    Item.project_id,
    postgresql_where=text("is_gold"),
    sqlite_where=text("is_gold"),
)
# "item.is_gold" bare, as the partial index above states it: SQLAlchemy writes the column — and any expression
# typed Boolean — as "is_gold = 1" on SQLite, and ``.is_(True)`` as "IS true" on PostgreSQL, and neither planner
# matches those to the index (SQLite scanned every item of the project). Untyped, it is written as it stands.
# Use this in a query's WHERE wherever gold items are looked up.
IS_GOLD: ColumnClause[Any] = literal_column("item.is_gold")

__all__ = ["Candidate", "Item"]
