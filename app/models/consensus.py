from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow


class ConsensusFit(Base):
    """A Dawid–Skene fit of one project and dimension, as the worker (or a reader that needed it) last made it.

    ``posteriors`` is an ``.npz`` of parallel arrays — ``item`` (id), ``pair`` (index of (i, j), i < j, in
    ``itertools.combinations(range(k), 2)`` order) and ``p`` (float32 P(i ≻ j), P(j ≻ i), P(tie)) — sorted by
    (item, pair); ``reliability`` maps an annotator id to ``[reliability, labels]``."""

    __tablename__ = "consensus_fit"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A fingerprint of the judgments the fit saw; a different one means stale.
    source: Mapped[str] = mapped_column(String(200), default="")
    reliability: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    posteriors: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[int] = mapped_column(Integer, default=0)  # pair labels the fit rests on
    fit_ms: Mapped[float] = mapped_column(default=0.0)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
