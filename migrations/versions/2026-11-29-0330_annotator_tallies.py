"""annotator tallies: each annotator's judged and gold-judged counts per project, kept by submits

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'annotator_tally',
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('annotator_id', sa.Integer(), nullable=False),
        sa.Column('judged', sa.Integer(), nullable=False),
        sa.Column('gold_judged', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['annotator_id'], ['user.id'], name=op.f('fk_annotator_tally_annotator_id_user'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_annotator_tally_project_id_project'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', 'annotator_id', name=op.f('pk_annotator_tally')),
    )
    with op.batch_alter_table('annotator_tally', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotator_tally_annotator_id'), ['annotator_id'], unique=False)
    # The counts of the judgments already stored.
    op.execute(
        "INSERT INTO annotator_tally (project_id, annotator_id, judged, gold_judged) "
        "SELECT judgment.project_id, judgment.annotator_id, count(*), "
        "coalesce(sum(CASE WHEN item.is_gold THEN 1 ELSE 0 END), 0) "
        "FROM judgment JOIN item ON item.id = judgment.item_id "
        "GROUP BY judgment.project_id, judgment.annotator_id"
    )


def downgrade() -> None:
    with op.batch_alter_table('annotator_tally', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotator_tally_annotator_id'))

    op.drop_table('annotator_tally')
