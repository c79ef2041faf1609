from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow


class Adjudication(Base):
    """An admin's decision on an item's candidate round; the newest one supersedes the annotators' votes.

    ``verdicts``: {dimension: {"kind": "preference" | "tie" | "na", "chosen": id, "rejected": id}} in canonical
    candidate ids. Earlier decisions stay as the record of who decided what, when and why.
    """

    __tablename__ = "adjudication"
    __table_args__ = (Index("ix_adjudication_item_round", "item_id", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), default=None)
    verdicts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
