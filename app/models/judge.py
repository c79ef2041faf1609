from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, NullableJSON, UTCDateTime, utcnow


class Suggestion(Base):
    """A judge model's verdict on one item, candidate round and dimension ("overall" included) — never a human
    judgment.

    ``kind`` as a verdict's ("preference": chosen ≻ rejected; "ranking": ``ranking`` = ``{"tiers": [[id, …], …]}``,
    best tier first; "tie"), or "unsure": the orders asked gave different answers (position bias), so nothing is
    suggested. ``orders`` keeps every order asked: ``[{"shown": [candidate id, …], "answer": …, "p": …}]`` — the
    candidates as the judge saw them (A first), its raw constrained answer and, where the server gave logprobs, the
    answer's probability. ``confidence`` (0–1) is the judge's probability of the suggested verdict over the orders,
    None when no logprobs came back; ``judge`` names the judge (its model and server) and ``prompt_version`` the
    rubric it was given. Candidate ids are canonical.
    """

    __tablename__ = "suggestion"
    __table_args__ = (
        UniqueConstraint("item_id", "round", "dimension", "judge"),
        CheckConstraint("kind IN ('preference', 'tie', 'ranking', 'unsure')", name="suggestion_kind_valid"),
        CheckConstraint(
            "(kind = 'preference') = (chosen_candidate_id IS NOT NULL AND rejected_candidate_id IS NOT NULL)",
            name="suggestion_preference_has_candidates",
        ),
        CheckConstraint("(kind = 'ranking') = (ranking IS NOT NULL)", name="suggestion_ranking_only_for_rankings"),
        CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence_range"),
        Index("ix_suggestion_project_dimension", "project_id", "dimension"),
        Index("ix_suggestion_chosen_candidate_id", "chosen_candidate_id"),
        Index("ix_suggestion_rejected_candidate_id", "rejected_candidate_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)  # the candidate round judged
    dimension: Mapped[str] = mapped_column(String(64))
    judge: Mapped[str] = mapped_column(String(400))  # "<model>@<base url>"
    model: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(500))
    prompt_version: Mapped[str] = mapped_column(String(64))  # a digest of the rubric's text
    kind: Mapped[str] = mapped_column(String(16))
    chosen_candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidate.id", ondelete="CASCADE"), default=None
    )
    rejected_candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidate.id", ondelete="CASCADE"), default=None
    )
    ranking: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    orders: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    rationale: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
