"""rankings and preference strength: verdict.ranking, verdict.strength, the project's ranking mode

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 20:00:00

Every stored verdict stays valid as it is (kind preference / tie / na, no ranking, no strength), so the pairs it
implies — and the exports made from it — do not change. SQLite: changing the kind check copies the verdict table
(batch mode); verdict has no triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("verdict", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strength", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ranking", JSON, nullable=True))
        batch_op.drop_constraint(op.f("ck_verdict_kind_valid"), type_="check")
        batch_op.create_check_constraint("kind_valid", "kind IN ('preference', 'tie', 'na', 'ranking')")
        batch_op.create_check_constraint("ranking_only_for_rankings", "(kind = 'ranking') = (ranking IS NOT NULL)")
        batch_op.create_check_constraint(
            "strength_valid", "strength IS NULL OR (kind = 'preference' AND strength BETWEEN 1 AND 3)"
        )
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ranking_mode", sa.String(length=16), nullable=False, server_default="best_worst")
        )
        batch_op.add_column(sa.Column("strength", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("cohen_min_items", sa.Integer(), nullable=False, server_default="20"))
        batch_op.create_check_constraint("ranking_mode_valid", "ranking_mode IN ('best_worst', 'rank')")


def downgrade() -> None:
    op.execute("DELETE FROM verdict WHERE kind = 'ranking'")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_project_ranking_mode_valid"), type_="check")
        batch_op.drop_column("cohen_min_items")
        batch_op.drop_column("strength")
        batch_op.drop_column("ranking_mode")
    with op.batch_alter_table("verdict", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_verdict_strength_valid"), type_="check")
        batch_op.drop_constraint(op.f("ck_verdict_ranking_only_for_rankings"), type_="check")
        batch_op.drop_constraint(op.f("ck_verdict_kind_valid"), type_="check")
        batch_op.create_check_constraint("kind_valid", "kind IN ('preference', 'tie', 'na')")
        batch_op.drop_column("ranking")
        batch_op.drop_column("strength")
