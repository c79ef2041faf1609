"""imported judgments: user.external, judgment.imported

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 20:15:00

Judgments brought from earlier annotation rounds (``prefstudio import-judgments``) are kept like submitted ones and
marked ``imported``: the order their annotator saw is unknown, so position figures leave them out. Their annotators
become users marked ``external``, who cannot log in. Both columns are added with a default (no table copy on SQLite,
no rewrite on PostgreSQL); every stored row is a native user and a native judgment.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user", sa.Column("external", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("judgment", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("judgment", schema=None) as batch_op:
        batch_op.drop_column("imported")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("external")
