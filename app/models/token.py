from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

TOKEN_SCOPES = ("export", "api")


class ApiToken(Base):
    """A bearer token. ``export``: read-only export of one project; ``api``: acts as its user."""

    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint("scope IN ('export', 'api')", name="scope_valid"),
        CheckConstraint("scope <> 'export' OR project_id IS NOT NULL", name="export_has_project"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC-SHA256 of the token
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell tokens apart
    scope: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), default=None, index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
