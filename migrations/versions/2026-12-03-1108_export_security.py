"""export security: stored data cards lose the generation settings, stored filters the names of annotators

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:08:00
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Data cards written before this revision end with the project's generation settings (base URLs with any
# credentials in them); their filter table and stored filter may name excluded annotators by username or id.
GENERATION_BLOCK = re.compile(r"\nGeneration settings of the project:\n\n```json\n.*?\n```\n?", re.DOTALL)
EXCLUDED_ROW = re.compile(r"^\| exclude_annotators \| `.*` \|$", re.MULTILINE)
WITHHELD = "withheld"


def upgrade() -> None:
    conn = op.get_bind()
    snapshot = sa.table(
        'snapshot',
        sa.column('id', sa.Integer),
        sa.column('state', sa.String),
        sa.column('card', sa.Text),
        sa.column('filters', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql')),
    )
    for sid, state, card, filters in conn.execute(sa.select(snapshot)).all():
        new_card = GENERATION_BLOCK.sub("\n", card or "")
        new_filters: dict[str, Any] = dict(filters or {})
        # A pending snapshot still needs its filter; the writer replaces the names when it is done.
        if state != 'pending' and new_filters.get('exclude_annotators'):
            new_filters['exclude_annotators'] = [WITHHELD]
            new_card = EXCLUDED_ROW.sub(f"| exclude_annotators | `{json.dumps([WITHHELD])}` |", new_card)
        if new_card != (card or "") or new_filters != (filters or {}):
            conn.execute(
                sa.update(snapshot).where(snapshot.c.id == sid).values(card=new_card, filters=new_filters)
            )


def downgrade() -> None:
    pass  # what was removed from the stored cards and filters is not put back
