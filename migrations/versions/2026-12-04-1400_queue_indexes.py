"""queue indexes: uncertain-first order, reopened items

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 14:00:00

"Uncertain first" hands out fresh items by the judge's confidence: ``ix_item_uncertain`` reads them in that order
instead of sorting every fresh item of the project. With adaptive overlap, complete items keep claim counts between
r_min and r, where reopened ones wait for their extra judgments: the partial ``ix_item_reopened`` holds only the
reopened items still open, so next-item finds them without walking the complete ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REOPENED = "target IS NOT NULL AND claims < target"


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_uncertain", ["project_id", "status", "claims", "judge_confidence", "id"], unique=False
        )
        batch_op.create_index(
            "ix_item_reopened",
            ["project_id", "status", sa.literal_column("claims DESC"), "id"],
            unique=False,
            postgresql_where=sa.text(REOPENED),
            sqlite_where=sa.text(REOPENED),
        )


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index("ix_item_reopened", postgresql_where=sa.text(REOPENED), sqlite_where=sa.text(REOPENED))
        batch_op.drop_index("ix_item_uncertain")
