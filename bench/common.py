"""Shared by the benchmarks: the schema through Alembic, and bulk loading of millions of rows."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import text

from app.annotation.tallies import recount_tallies
from app.db import Database

ROOT = Path(__file__).resolve().parent.parent
# The item columns the benchmarks fill (the rest take their defaults), in the order their rows give them.
ITEM_COLUMNS = [
    "id",
    "project_id",
    "prompt",
    "prompt_hash",
    "meta",
    "is_gold",
    "status",
    "round",
    "claims",
    "judgment_count",
    "created_at",
]
ASSIGNMENT_COLUMNS = [
    "id",
    "project_id",
    "item_id",
    "annotator_id",
    "round",
    "status",
    "display_order",
    "leased_at",
    "lease_expires_at",
    "updated_at",
]
JUDGMENT_COLUMNS = [
    "id",
    "project_id",
    "item_id",
    "annotator_id",
    "assignment_id",
    "round",
    "reason",
    "flag_all_bad",
    "flag_problematic",
    "seconds",
    "submit_key",
    "version",
    "created_at",
    "updated_at",
]


VERDICT_COLUMNS = ["id", "judgment_id", "dimension", "kind", "chosen_candidate_id", "rejected_candidate_id"]
# The tables whose ids a fill writes itself, past their sequences.
FILLED_TABLES = ("item", "candidate", "assignment", "judgment", "verdict")


def finish_fill(db: Database, project_id: int, *, vacuum: bool = True, sqlite_analyze: bool = False) -> None:
    """After a bulk fill: the annotators' judged counts as submits keep them (the agreement fingerprint reads
    them), the id sequences moved past the rows written, and the planner statistics — with ``vacuum`` on
    PostgreSQL also the visibility map (index-only scans) — that autovacuum would write later. SQLite keeps no
    statistics unless ANALYZEd (``sqlite_analyze``)."""
    with db.session() as s:
        recount_tallies(s, project_id=project_id)
    if not db.is_postgres:
        if sqlite_analyze:
            with db.write_engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        return
    with db.write_engine.begin() as conn:
        for table in FILLED_TABLES:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    with db.write_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE" if vacuum else "ANALYZE"))


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("postgresql://", "postgresql+psycopg://"))
    return cfg


def bulk(db: Database, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL, executemany on SQLite — the plain DB-API, to fill millions of rows quickly."""
    with db.write_engine.begin() as conn:
        raw: Any = conn.connection.dbapi_connection
        if db.is_postgres:
            with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            raw.executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)


def stamp(db: Database, moment: datetime) -> Any:
    """A timestamp as the database takes it: SQLite keeps naive UTC text (as UTCDateTime writes it)."""
    return moment if db.is_postgres else moment.replace(tzinfo=None).isoformat(sep=" ")


def copy_rows(db: Database, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Like bulk(), for rows from any iterable: a generator of millions of rows is never held in memory.

    On PostgreSQL the COPY runs with ``session_replication_role = replica`` (superuser), which skips the
    foreign-key triggers: the caller writes the ids itself and vouches for every reference. Unique and check
    constraints still hold. On SQLite: executemany in one transaction, foreign keys checked as usual.
    """
    with db.write_engine.begin() as conn:
        raw: Any = conn.connection.dbapi_connection
        if db.is_postgres:
            with raw.cursor() as cur:
                cur.execute("SET LOCAL session_replication_role = replica")
                with cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            raw.executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)


def process_tree(root: int) -> set[int]:
    """``root`` and all its descendants now, found from every process's parent in /proc/*/stat (cheap: a
    short read each; /proc/PID/task/TID/children needs a kernel option some machines lack)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        parents[int(name)] = int(stat[stat.rindex(b")") + 2 :].split(None, 2)[1])
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    return tree
