"""Shared by the benchmarks: the schema through Alembic, and bulk loading of millions of rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.config import Config

from app.db import Database

ROOT = Path(__file__).resolve().parent.parent


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
