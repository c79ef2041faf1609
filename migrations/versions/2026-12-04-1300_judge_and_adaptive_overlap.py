"""judge and adaptive overlap: suggestions, judge settings, queue order, r_min..r_max

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 13:00:00

A judge model's verdicts are stored as ``suggestion`` rows, apart from human judgments. The project gains its judge
settings (JSON, like ``generation``), whether annotators see suggestions, the queue order and adaptive overlap
(``overlap_min`` .. ``overlap``, ``adaptive_margin``); an item gains the judgments it wants now (``target``) and the
judge's confidence; a judgment records whether a suggestion was on its page. Every new column has a default that
keeps today's behaviour: suggestions hidden, fullest first, every item wants r (``overlap_min`` NULL), and stored
judgments say nothing about suggestions (NULL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
NULLABLE_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judge", JSON, nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column("suggestions", sa.String(8), nullable=False, server_default="hidden"))
        batch_op.add_column(sa.Column("queue_order", sa.String(16), nullable=False, server_default="fullest_first"))
        batch_op.add_column(sa.Column("overlap_min", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("adaptive_margin", sa.Float(), nullable=False, server_default="0.3"))
        batch_op.create_check_constraint("suggestions_valid", "suggestions IN ('hidden', 'shown', 'after')")
        batch_op.create_check_constraint("queue_order_valid", "queue_order IN ('fullest_first', 'uncertain_first')")
        batch_op.create_check_constraint(
            "overlap_min_valid", "overlap_min IS NULL OR (overlap_min >= 1 AND overlap_min <= overlap)"
        )
    op.add_column("item", sa.Column("target", sa.Integer(), nullable=True))
    op.add_column("item", sa.Column("judge_confidence", sa.Float(), nullable=True))
    op.add_column("judgment", sa.Column("suggestion_shown", sa.Boolean(), nullable=True))
    op.create_table(
        "suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=400), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("prompt_version", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("chosen_candidate_id", sa.Integer(), nullable=True),
        sa.Column("rejected_candidate_id", sa.Integer(), nullable=True),
        sa.Column("ranking", NULLABLE_JSON, nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("orders", JSON, nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('preference', 'tie', 'ranking', 'unsure')", name="suggestion_kind_valid"),
        sa.CheckConstraint(
            "(kind = 'preference') = (chosen_candidate_id IS NOT NULL AND rejected_candidate_id IS NOT NULL)",
            name="suggestion_preference_has_candidates",
        ),
        sa.CheckConstraint("(kind = 'ranking') = (ranking IS NOT NULL)", name="suggestion_ranking_only_for_rankings"),
        sa.CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence_range"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["chosen_candidate_id"], ["candidate.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rejected_candidate_id"], ["candidate.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "round", "dimension", "judge"),
    )
    op.create_index("ix_suggestion_project_dimension", "suggestion", ["project_id", "dimension"])
    op.create_index("ix_suggestion_chosen_candidate_id", "suggestion", ["chosen_candidate_id"])
    op.create_index("ix_suggestion_rejected_candidate_id", "suggestion", ["rejected_candidate_id"])


def downgrade() -> None:
    op.drop_table("suggestion")
    with op.batch_alter_table("judgment", schema=None) as batch_op:
        batch_op.drop_column("suggestion_shown")
    # Not a batch copy on SQLite: copying the item table would drop its search triggers (migration 0011).
    for column in ("judge_confidence", "target"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE item DROP COLUMN {column}")
        else:
            op.drop_column("item", column)
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_constraint("overlap_min_valid", type_="check")
        batch_op.drop_constraint("queue_order_valid", type_="check")
        batch_op.drop_constraint("suggestions_valid", type_="check")
        for column in ("adaptive_margin", "overlap_min", "queue_order", "suggestions", "judge"):
            batch_op.drop_column(column)
