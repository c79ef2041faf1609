"""snapshot parts: the extra files of a snapshot (ties, one per dimension)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 20:16:00

``snapshot.parts`` lists the files written beside the main one: ``[{name, kind, dimension, rows, bytes, sha256,
file_name}]``. Snapshots written before have none (an empty list).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parts", JSON, nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.drop_column("parts")
