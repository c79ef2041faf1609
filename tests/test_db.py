"""Database helpers."""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text

from app.db import Database, serial_plan
from app.models import IS_GOLD, Item


def _plan(conn: Connection) -> str:
    query = select(func.count()).select_from(Item)
    explain = "EXPLAIN QUERY PLAN" if conn.dialect.name == "sqlite" else "EXPLAIN"
    return "\n".join(str(row[-1]) for row in conn.execute(text(f"{explain} {query.compile(dialect=conn.dialect)}")))


def test_a_serial_plan_keeps_a_scan_to_one_backend(db: Database) -> None:
    """Inside ``serial_plan`` PostgreSQL plans no parallel workers, even where it would (made cheap here);
    after it, it plans as before. On SQLite it changes nothing."""
    with db.write_engine.connect() as conn:
        if db.is_postgres:
            for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
                conn.execute(text(f"SET LOCAL {setting} = 0"))
            assert "Gather" in _plan(conn)
        with serial_plan(conn):
            assert "Gather" not in _plan(conn)
            if db.is_postgres:
                assert conn.scalar(text("SHOW max_parallel_workers_per_gather")) == "0"
        if db.is_postgres:
            assert "Gather" in _plan(conn)
        assert conn.scalar(select(func.count()).select_from(Item)) == 0


def test_the_gold_filter_is_answered_from_the_partial_gold_index(db: Database) -> None:
    """``IS_GOLD`` is written the way ``ix_item_project_gold`` states its condition, so that a gold lookup can be
    answered from that index (SQLite scanned every item of the project when it read "is_gold = 1"). SQLite's
    planner shows it; PostgreSQL's, on a near-empty table, picks any index on project_id, so there the condition
    is checked as written."""
    query = select(Item.id).where(Item.project_id == 1, IS_GOLD)
    with db.write_engine.connect() as conn:
        compiled = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        assert compiled.endswith("AND item.is_gold"), compiled  # the index's condition: is_gold, bare
        if not db.is_postgres:
            plan = "\n".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
            assert "ix_item_project_gold" in plan, plan
