"""judgment.submit_digest, the fingerprint of the answer a submit key was first used for

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:09:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: judgments stored before it have no fingerprint, and their retries are answered as before.
    with op.batch_alter_table('judgment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submit_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('judgment', schema=None) as batch_op:
        batch_op.drop_column('submit_digest')
