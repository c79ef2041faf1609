"""agreement fingerprint indexes: a project's newest judgment change, item rounds, gold items

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 12:16:50.606972
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.create_index('ix_item_project_gold', ['project_id'], unique=False, postgresql_where=sa.text('is_gold'), sqlite_where=sa.text('is_gold'))
        batch_op.create_index('ix_item_project_round', ['project_id', 'round'], unique=False)

    with op.batch_alter_table('judgment', schema=None) as batch_op:
        batch_op.create_index('ix_judgment_project_updated_at', ['project_id', 'updated_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('judgment', schema=None) as batch_op:
        batch_op.drop_index('ix_judgment_project_updated_at')

    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.drop_index('ix_item_project_round')
        batch_op.drop_index('ix_item_project_gold', postgresql_where=sa.text('is_gold'), sqlite_where=sa.text('is_gold'))

