"""One import of a file into a project: which file, by whom, when, and how many items it added or skipped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

MAX_FILENAME = 255


class ImportBatch(Base):
    """Written in the import's own transaction, before its items (which carry its id), and counted at its end:
    a failed import leaves no batch. ``filename`` is the uploaded name as sent (untrusted text)."""

    __tablename__ = "import_batch"
    __table_args__ = (Index("ix_import_batch_project_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(MAX_FILENAME), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added: Mapped[int] = mapped_column(Integer, default=0)  # items added
    duplicates: Mapped[int] = mapped_column(Integer, default=0)  # lines skipped as duplicates


__all__ = ["MAX_FILENAME", "ImportBatch"]
