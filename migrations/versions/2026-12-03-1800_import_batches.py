"""import batches: one row per import, and the batch of each imported item

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:00:00

SQLite: the item column with its named foreign key (ON DELETE SET NULL) needs a copy of the item table (batch
mode; ALTER TABLE cannot add a table constraint, and an inline REFERENCES clause is reflected without its name and
its ON DELETE). The copy drops the table's triggers — the search index of migration 0011 — so they are read first
and made again after it, both ways.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def _item_copied_keeping_triggers() -> Iterator[Any]:
    """SQLite: a batch operation on ``item`` (a copy of the table, which drops its triggers), then the triggers
    as they were — the search index of 0011 (its rows are keyed by item id, which the copy keeps)."""
    bind = op.get_bind()
    triggers = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'item'")
    saved = list(triggers.scalars())
    with op.batch_alter_table("item", schema=None) as batch_op:
        yield batch_op
    for sql in saved:
        op.execute(sql)


def upgrade() -> None:
    op.create_table(
        "import_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_import_batch_project_id_project"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user.id"], name=op.f("fk_import_batch_created_by_id_user"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batch")),
    )
    op.create_index("ix_import_batch_project_id", "import_batch", ["project_id", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("item", sa.Column("import_batch_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_item_import_batch_id_import_batch"),
            "item",
            "import_batch",
            ["import_batch_id"],
            ["id"],
            ondelete="SET NULL",
        )
    else:
        with _item_copied_keeping_triggers() as batch_op:
            batch_op.add_column(sa.Column("import_batch_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                op.f("fk_item_import_batch_id_import_batch"),
                "import_batch",
                ["import_batch_id"],
                ["id"],
                ondelete="SET NULL",
            )
    op.create_index("ix_item_project_batch", "item", ["project_id", "import_batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_item_project_batch", table_name="item")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint(op.f("fk_item_import_batch_id_import_batch"), "item", type_="foreignkey")
        op.drop_column("item", "import_batch_id")
    else:
        with _item_copied_keeping_triggers() as batch_op:
            batch_op.drop_column("import_batch_id")
    op.drop_index("ix_import_batch_project_id", table_name="import_batch")
    op.drop_table("import_batch")
