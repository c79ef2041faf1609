"""consensus: the Dawid–Skene fit of each project and dimension (reliabilities, pair posteriors)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 20:14:00

A new table only: nothing stored changes. The worker fills it; a missing row is fitted on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consensus_fit",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("reliability", JSON, nullable=False),
        sa.Column("posteriors", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("fit_ms", sa.Float(), nullable=False),
        sa.Column("fitted_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_consensus_fit_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "dimension", name=op.f("pk_consensus_fit")),
    )


def downgrade() -> None:
    op.drop_table("consensus_fit")
