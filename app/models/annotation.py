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
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, NullableJSON, UTCDateTime, utcnow

ASSIGNMENT_STATUSES = ("leased", "submitted", "skipped", "expired")
VERDICT_KINDS = ("preference", "tie", "na", "ranking")
STRENGTHS = (1, 2, 3)  # slightly better, better, much better (HelpSteer2-Preference's scale without the sign)
OVERALL = "overall"


class Assignment(Base):
    """An item handed to an annotator: the lease, and the candidate order they were shown.

    One per (item, candidate round, annotator): regenerating an item's candidates opens a new round.
    """

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("item_id", "round", "annotator_id"),
        CheckConstraint("status IN ('leased', 'submitted', 'skipped', 'expired')", name="status_valid"),
        Index("ix_assignment_annotator_status", "annotator_id", "project_id", "status"),
        Index("ix_assignment_project_status_expires", "project_id", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)  # the candidate round shown
    status: Mapped[str] = mapped_column(String(16), default="leased")
    # Candidate ids in the order shown to this annotator (left to right).
    display_order: Mapped[list[int]] = mapped_column(JSONType)
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    skip_reason: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AnnotatorTally(Base):
    """An annotator's running counts in one project, kept by each submit so that next-item reads them instead of
    counting: their judgments (every candidate round) and those of gold items (the gold share).
    ``app.annotation.tallies.recount_tallies`` rebuilds them from the judgments (bulk loads)."""

    __tablename__ = "annotator_tally"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True)
    judged: Mapped[int] = mapped_column(Integer, default=0)
    gold_judged: Mapped[int] = mapped_column(Integer, default=0)


class Judgment(Base):
    """One annotator's verdict on one item; the per-dimension choices are its verdicts."""

    __tablename__ = "judgment"
    __table_args__ = (
        UniqueConstraint("item_id", "round", "annotator_id"),
        UniqueConstraint("submit_key"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_judgment_project_created_at", "project_id", "created_at"),
        # The agreement fingerprint: a project's newest change without reading its judgments.
        Index("ix_judgment_project_updated_at", "project_id", "updated_at"),
        Index("ix_judgment_annotator_id", "annotator_id"),
        Index("ix_judgment_assignment_id", "assignment_id"),  # cascades from assignment
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)  # the candidate round judged
    reason: Mapped[str] = mapped_column(Text, default="")
    flag_all_bad: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_problematic: Mapped[bool] = mapped_column(Boolean, default=False)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)  # wall clock, item shown to submit
    # Time the page was visible and in use (idle stretches left out); None when the client did not measure it.
    active_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    submit_key: Mapped[str] = mapped_column(String(64))  # client idempotency key
    # SHA-256 of the answer first sent under submit_key: a retry must send the same answer, a reused key is refused.
    # None for judgments stored before it was kept.
    submit_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Brought from an earlier annotation round (app/items/judgments.py): the order shown is unknown, and its
    # assignment's display order is the canonical one, so position figures leave it out.
    imported: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Whether the judge's suggestion was on the page before this judgment was submitted (suggestions "shown");
    # False when it was not (hidden, or "after"); None for judgments stored before this was recorded or imported.
    suggestion_shown: Mapped[bool | None] = mapped_column(Boolean, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Verdict(Base):
    """The choice on one dimension ("overall" or a project dimension) within a judgment.

    kind "preference": chosen (best) ≻ rejected (worst), and with k = 2 optionally how much better (``strength``
    1–3: slightly, better, much better); "ranking" (k ≥ 3, a project in rank mode): every candidate ordered,
    ties allowed, in ``ranking`` = ``{"tiers": [[id, …], …], "much": [gap, …]}`` — best tier first, and the gaps
    (0: between the first and second tier) marked "much better"; "tie" and "na" carry no candidates.
    Candidate ids are canonical — display order never reaches this table.
    """

    __tablename__ = "verdict"
    __table_args__ = (
        UniqueConstraint("judgment_id", "dimension"),
        CheckConstraint("kind IN ('preference', 'tie', 'na', 'ranking')", name="kind_valid"),
        CheckConstraint("chosen_candidate_id <> rejected_candidate_id", name="chosen_not_rejected"),
        CheckConstraint(
            "(kind = 'preference') = (chosen_candidate_id IS NOT NULL AND rejected_candidate_id IS NOT NULL)",
            name="preference_has_candidates",
        ),
        CheckConstraint(
            "kind = 'preference' OR (chosen_candidate_id IS NULL AND rejected_candidate_id IS NULL)",
            name="tie_na_without_candidates",
        ),
        CheckConstraint("(kind = 'ranking') = (ranking IS NOT NULL)", name="ranking_only_for_rankings"),
        CheckConstraint(
            "strength IS NULL OR (kind = 'preference' AND strength BETWEEN 1 AND 3)", name="strength_valid"
        ),
        # Deleting candidates (a project, a regenerated round) cascades here: without these, one scan per row.
        Index("ix_verdict_chosen_candidate_id", "chosen_candidate_id"),
        Index("ix_verdict_rejected_candidate_id", "rejected_candidate_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgment.id", ondelete="CASCADE"))
    dimension: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    chosen_candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidate.id", ondelete="CASCADE"), default=None
    )
    rejected_candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidate.id", ondelete="CASCADE"), default=None
    )
    strength: Mapped[int | None] = mapped_column(Integer, default=None)  # 1–3 on a k = 2 preference, when asked
    ranking: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)  # kind "ranking" only
