"""Alembic owns the schema: upgrade, downgrade, upgrade again, and no drift from the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session

from app.explorer.indexes import include_object
from app.models import Base
from tests.conftest import alembic_config
from tests.factories import make_items, make_judgment, make_project, make_user


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "head")
    engine = create_engine(scratch_url)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(cfg, "head")
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_models_and_migrations_agree(scratch_url: str) -> None:
    command.upgrade(alembic_config(scratch_url), "head")
    engine = create_engine(scratch_url)
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_object": include_object}  # the search indexes are 0011's own
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_tallies_migration_counts_the_judgments_already_stored(scratch_url: str) -> None:
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "head")
    engine = create_engine(scratch_url)
    with Session(engine) as s:
        me, peer = make_user(s, "m-me"), make_user(s, "m-peer")
        project = make_project(s, "migrated", k=2, overlap=2, members=[me, peer])
        first, second, third = make_items(s, project, 3)
        first.is_gold = True
        for item in (first, second, third):
            make_judgment(s, item, me, {"overall": ("tie", None, None)})
        make_judgment(s, first, peer, {"overall": ("tie", None, None)})
        s.commit()
        expected = {me.id: (3, 1), peer.id: (1, 1)}
    command.downgrade(cfg, "0006")  # a database from before the tallies, with these judgments in it
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT annotator_id, judged, gold_judged FROM annotator_tally")).all()
    engine.dispose()
    assert {a: (j, g) for a, j, g in rows} == expected
