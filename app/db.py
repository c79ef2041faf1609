"""Engines and sessions.

SQLite: WAL, a busy timeout, foreign keys on, and two engines on the same file: reads begin a deferred
transaction, writes begin ``BEGIN IMMEDIATE`` so that a writer waits for the lock up front instead of
failing with "database is locked" when it upgrades a read snapshot — and takes its turn first, in the order the
writers came (``app.kit.writelock``), so that none waits in SQLite's sleeping busy handler while newer ones pass
it. PostgreSQL: one engine for both.

A connection that the server drops (restart, ``pg_terminate_backend``, network) is replaced: idle ones are
found by the pre-ping at checkout; one lost in the middle of a request fails that request with
``DatabaseUnavailable`` (503, JSON detail) instead of a bare 500, and the client may retry it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Engine, Select, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.kit.errors import AppError
from app.kit.writelock import WriteTurns, lock_path_for, raw_connection

RowT = TypeVar("RowT", bound=tuple[Any, ...])


class DatabaseUnavailable(AppError):
    """The connection to the database was lost while a request or job was using it."""

    status_code = 503
    headers = {"Retry-After": "1"}  # the pool reconnects on the next checkout


def _lost_connections_are_unavailable(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        # The pool has already invalidated the connection; the next checkout gets a fresh one.
        if context.is_disconnect and not context.is_pre_ping:
            return DatabaseUnavailable("The connection to the database was lost; please try again")
        return None


def _sqlite_engine(url: str, *, busy_timeout_ms: int, turns: WriteTurns | None) -> Engine:
    """A SQLite engine; with ``turns``, its transactions write (``BEGIN IMMEDIATE``, taking turns)."""
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    if turns is None:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    _take_turns(engine, turns)
    return engine


def _take_turns(engine: Engine, turns: WriteTurns) -> None:
    """Write transactions of ``engine`` take their turn before ``BEGIN IMMEDIATE`` and give it back once
    ``COMMIT`` or ``ROLLBACK`` has run, or their connection is checked in, invalidated or closed."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        owner = raw_connection(conn.connection)
        turns.take(owner)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turns.give_back(owner)
            raise

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        commit(dbapi_connection)  # a failed COMMIT keeps the turn until the rollback that follows
        turns.give_back(raw_connection(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            turns.give_back(raw_connection(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    for name in ("checkin", "invalidate", "soft_invalidate", "close", "close_detached"):
        event.listen(engine, name, lambda dbapi_connection, *_: turns.give_back(raw_connection(dbapi_connection)))


@dataclass
class Database:
    """The engines and session factories of one database URL."""

    url: str
    read_engine: Engine
    write_engine: Engine
    ReadSession: sessionmaker[Session]
    WriteSession: sessionmaker[Session]
    settings: Settings | None = None  # what it was made from (background tasks read their settings here)
    write_turns: WriteTurns | None = None  # SQLite: whose turn it is to write (see app.kit.writelock)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A session that commits on success and rolls back on error (CLI, jobs, tests)."""
        factory = self.WriteSession if write else self.ReadSession
        with factory(info={"write": write}) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()


def make_database(settings: Settings) -> Database:
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        busy_ms = settings.sqlite_busy_timeout_ms
        read = _sqlite_engine(url, busy_timeout_ms=busy_ms, turns=None)
        turns = WriteTurns(lock_path_for(make_url(url).database), timeout_s=busy_ms / 1000)
        write = _sqlite_engine(url, busy_timeout_ms=busy_ms, turns=turns)
    else:
        turns = None
        read = write = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
    for engine in {read, write}:
        _lost_connections_are_unavailable(engine)
    opts: dict[str, Any] = {"expire_on_commit": False, "autoflush": True}
    return Database(
        url=url,
        read_engine=read,
        write_engine=write,
        # Work that reads on connections of its own (``agreement.at_once``) takes them from here:
        # on SQLite the write engine's transactions take the write lock.
        ReadSession=sessionmaker(read, info={"read_engine": read}, **opts),
        WriteSession=sessionmaker(write, info={"read_engine": read}, **opts),
        settings=settings,
        write_turns=turns,
    )


def driver_statement(query: Any, dialect: Dialect) -> tuple[str, Any]:
    """``query`` as the driver's SQL text and parameters (positional or named, as the driver takes them), for
    reads that skip SQLAlchemy's result rows. Parameters are passed as they are, without SQLAlchemy's bind
    processing — plain numbers and strings work (and PostgreSQL's JSON indexes, which are plain integers), SQLite's
    JSON paths (formatted by a bind processor) do not — and results come back unprocessed."""
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:
        return compiled.string, tuple(params[name] for name in compiled.positiontup or ())
    return compiled.string, params


def driver_rows(conn: Connection, query: Any) -> list[Any]:
    """The rows of ``query`` as the driver's own tuples, on ``conn`` (in its transaction): building
    SQLAlchemy's rows can cost as much as reading them."""
    sql, params = driver_statement(query, conn.dialect)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")


def export_snapshot(session: Session) -> str:
    """PostgreSQL: the id of the snapshot of ``session``'s transaction, for other connections to read the same data
    (``import_snapshot``) while this transaction stays open."""
    snapshot = str(session.execute(text("SELECT pg_export_snapshot()")).scalar_one())
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def import_snapshot(conn: Connection, snapshot: str) -> None:
    """PostgreSQL: make ``conn``'s transaction (REPEATABLE READ, nothing read in it yet) see ``snapshot``."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # checked: hex digits and dashes only


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def for_update(session: Session, query: Select[RowT], *, skip_locked: bool = False, of: Any = None) -> Select[RowT]:
    """``query`` locking the rows it reads on PostgreSQL (``FOR UPDATE``; with ``skip_locked``, rows another
    transaction holds are passed over, not waited for). SQLite: unchanged, because a write transaction there is
    ``BEGIN IMMEDIATE`` and holds the whole database already, so what it read is what it writes."""
    return query.with_for_update(skip_locked=skip_locked, of=of) if is_postgres(session) else query


@contextmanager
def serial_plan(bind: Session | Connection) -> Iterator[None]:
    """PostgreSQL: the statements inside run in this backend alone, not in a parallel plan (whose workers would
    take every CPU from the annotators' requests for its duration: a count over a project's items every few
    seconds did). In a transaction; after an error the transaction's end drops the setting."""
    postgres = (
        bind.get_bind().dialect.name == "postgresql" if isinstance(bind, Session) else bind.dialect.name == "postgresql"
    )
    if postgres:
        bind.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    yield
    if postgres:
        bind.execute(text("SET LOCAL max_parallel_workers_per_gather TO DEFAULT"))
