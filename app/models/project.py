from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow

DEFAULT_DIMENSIONS: list[dict[str, str]] = [
    {"key": "helpful", "label": "Helpful", "description": "Answers the request fully, correctly and usefully."},
    {"key": "harmless", "label": "Harmless", "description": "Avoids content that could cause harm."},
    {"key": "honest", "label": "Honest", "description": "Truthful; admits uncertainty; no invented facts."},
    {"key": "polite", "label": "Polite", "description": "Respectful and considerate tone."},
    {
        "key": "refusal",
        "label": "Refusal",
        "description": "Refuses what must be refused, and only that; a good refusal explains and redirects.",
    },
]


class Project(Base):
    __tablename__ = "project"
    __table_args__ = (
        CheckConstraint("k BETWEEN 2 AND 4", name="k_range"),
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("lease_minutes >= 1", name="lease_positive"),
        CheckConstraint("ranking_mode IN ('best_worst', 'rank')", name="ranking_mode_valid"),
        CheckConstraint("suggestions IN ('hidden', 'shown', 'after')", name="suggestions_valid"),
        CheckConstraint("queue_order IN ('fullest_first', 'uncertain_first')", name="queue_order_valid"),
        CheckConstraint(
            "overlap_min IS NULL OR (overlap_min >= 1 AND overlap_min <= overlap)", name="overlap_min_valid"
        ),
        CheckConstraint("kind IN ('preference', 'arena')", name="project_kind_valid"),
        CheckConstraint("(kind = 'arena') = (parent_id IS NOT NULL)", name="arena_has_parent"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    guidelines: Mapped[str] = mapped_column(Text, default="")
    # [{"key": "helpful", "label": "Helpful", "description": "..."}]; "overall" is always judged too.
    dimensions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=lambda: list(DEFAULT_DIMENSIONS))
    k: Mapped[int] = mapped_column(Integer, default=2)
    overlap: Mapped[int] = mapped_column(Integer, default=3)
    lease_minutes: Mapped[int] = mapped_column(Integer, default=30)
    gold_share: Mapped[float] = mapped_column(Float, default=0.05)  # share of each annotator's queue
    gold_min_accuracy: Mapped[float] = mapped_column(Float, default=0.7)  # below it the page suggests a pause
    # How a judgment orders k ≥ 3 candidates: "best_worst" (best and worst) or "rank" (all of them, ties allowed).
    ranking_mode: Mapped[str] = mapped_column(String(16), default="best_worst")
    # Whether a k = 2 preference says how much better (slightly / better / much better).
    strength: Mapped[bool] = mapped_column(Boolean, default=False)
    # Cohen's κ of two annotators is shown from this many items judged by both.
    cohen_min_items: Mapped[int] = mapped_column(Integer, default=20)
    generation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The judge models and their rubric (app/judge/schemas.py JudgeSettings), stored like ``generation``.
    judge: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Whether annotators see the judge's suggestion: "hidden", "shown" (pre-selected, overridable) or "after"
    # (once they have submitted, as feedback).
    suggestions: Mapped[str] = mapped_column(String(8), default="hidden")
    # Which item the queue hands out next: the fullest first, or those the judge is least sure of first.
    queue_order: Mapped[str] = mapped_column(String(16), default="fullest_first")
    # Adaptive overlap: an item gets ``overlap_min`` judgments, and more, up to ``overlap`` (r_max), while they
    # disagree (a vote margin below ``adaptive_margin``, or against a confident judge). None: every item gets r.
    overlap_min: Mapped[int | None] = mapped_column(Integer, default=None)
    adaptive_margin: Mapped[float] = mapped_column(Float, default=0.3)
    # "preference": the project's own items; "arena": a blind evaluation of registered models of ``parent``,
    # its settings in ``arena`` ({"model_ids": [...], "prompts": {...}}); its votes are never training pairs
    # unless an export asks for source=arena.
    kind: Mapped[str] = mapped_column(String(16), default="preference", server_default="preference")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), default=None, index=True
    )
    arena: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def dimension_keys(self) -> list[str]:
        return [d["key"] for d in self.dimensions]


class ProjectMember(Base):
    __tablename__ = "project_member"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)  # a paused annotator gets no new items
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
