"""models, on-policy rounds and arenas: a model registry, candidate provenance, arena projects

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 17:00:00

``registered_model`` holds a project's models: the SFT model and the checkpoints its training runs wrote, each with
its parent, the snapshot (and sha256) it was trained on, the run's parameters and metrics, a digest of its weights
and, when it is served, its endpoint. A candidate records the registered model that wrote it and that model's weights
digest; a snapshot records the candidate rounds its pairs came from. An arena is a project of kind "arena" under its
parent project, with the models it compares in ``arena``. Existing rows keep their meaning: every project is a
"preference" project, no candidate names a registered model, and old snapshots list no rounds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


@contextmanager
def _candidate_copied_keeping_triggers() -> Iterator[Any]:
    """SQLite: a batch operation on ``candidate`` (a copy of the table, which drops its triggers), then the
    triggers as they were — the search index of 0011 (keyed by candidate id, which the copy keeps)."""
    bind = op.get_bind()
    triggers = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'candidate'")
    saved = list(triggers.scalars())
    with op.batch_alter_table("candidate", schema=None) as batch_op:
        yield batch_op
    for sql in saved:
        op.execute(sql)


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.String(length=1000), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("training_run_id", sa.Integer(), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=True),
        sa.Column("base_url", sa.String(length=500), nullable=True),
        sa.Column("served_name", sa.String(length=200), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('sft', 'checkpoint', 'other')", name="registered_model_kind_valid"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_id"], ["registered_model.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["snapshot_id"], ["snapshot.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["training_run_id"], ["training_run.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_index("ix_registered_model_parent_id", "registered_model", ["parent_id"])
    op.create_index("ix_registered_model_snapshot_id", "registered_model", ["snapshot_id"])
    op.create_index("ix_registered_model_training_run_id", "registered_model", ["training_run_id"])

    if op.get_bind().dialect.name == "sqlite":
        with _candidate_copied_keeping_triggers() as batch_op:
            batch_op.add_column(sa.Column("model_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                "fk_candidate_model_id_registered_model", "registered_model", ["model_id"], ["id"], ondelete="SET NULL"
            )
    else:
        op.add_column("candidate", sa.Column("model_id", sa.Integer(), nullable=True))
        op.create_foreign_key(None, "candidate", "registered_model", ["model_id"], ["id"], ondelete="SET NULL")
    op.add_column("candidate", sa.Column("weights_sha256", sa.String(length=64), nullable=True))
    op.create_index("ix_candidate_model_id", "candidate", ["model_id"])

    op.add_column("snapshot", sa.Column("rounds", JSON, nullable=False, server_default=sa.text("'[]'")))

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="preference"))
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arena", JSON, nullable=False, server_default=sa.text("'{}'")))
        batch_op.create_foreign_key(None, "project", ["parent_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index("ix_project_parent_id", ["parent_id"])
        batch_op.create_check_constraint("project_kind_valid", "kind IN ('preference', 'arena')")
        batch_op.create_check_constraint("arena_has_parent", "(kind = 'arena') = (parent_id IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_constraint("arena_has_parent", type_="check")
        batch_op.drop_constraint("project_kind_valid", type_="check")
        batch_op.drop_index("ix_project_parent_id")
        batch_op.drop_constraint("fk_project_parent_id_project", type_="foreignkey")
        for column in ("arena", "parent_id", "kind"):
            batch_op.drop_column(column)
    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.drop_column("rounds")
    op.drop_index("ix_candidate_model_id", table_name="candidate")
    if op.get_bind().dialect.name == "sqlite":
        with _candidate_copied_keeping_triggers() as batch_op:
            batch_op.drop_column("weights_sha256")
            batch_op.drop_column("model_id")
    else:
        op.drop_constraint("fk_candidate_model_id_registered_model", "candidate", type_="foreignkey")
        op.drop_column("candidate", "weights_sha256")
        op.drop_column("candidate", "model_id")
    op.drop_index("ix_registered_model_training_run_id", table_name="registered_model")
    op.drop_index("ix_registered_model_snapshot_id", table_name="registered_model")
    op.drop_index("ix_registered_model_parent_id", table_name="registered_model")
    op.drop_table("registered_model")
