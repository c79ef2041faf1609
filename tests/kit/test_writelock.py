"""SQLite writers take turns in the order they came (app.kit.writelock, wired in app.db)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db import Database, make_database
from app.kit.writelock import FairLock, WriteTurns
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = make_database(make_settings(f"sqlite:///{tmp_path / 'turns.db'}"))
    with db.session() as s:
        s.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"))
    yield db
    db.dispose()


def _turns(db: Database) -> WriteTurns:
    assert db.write_turns is not None
    return db.write_turns


def _wait_until(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds (the threads under test have queued up); no time limit beyond pytest's."""
    event = threading.Event()
    while not condition():
        event.wait(0.001)


def _log(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return [str(who) for who in s.execute(text("SELECT who FROM log ORDER BY id")).scalars()]


def _writer(db: Database, who: str, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            with db.session() as s:
                s.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": who})
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    return threading.Thread(target=run)


def test_the_lock_is_handed_to_the_longest_waiter_not_to_a_newcomer() -> None:
    """The holder releases and asks again at once: the waiter goes first (a ``threading.Lock`` lets the
    releasing thread take it straight back)."""
    lock, order = FairLock(), []
    me, other = object(), object()
    assert lock.acquire(me)

    def wait_for_it() -> None:
        lock.acquire(other)
        order.append("waiter")
        lock.release(other)

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    _wait_until(lambda: lock.waiting() == 1)
    lock.release(me)
    lock.acquire(me)
    order.append("newcomer")
    lock.release(me)
    waiter.join()
    assert order == ["waiter", "newcomer"]


def test_a_waiting_lock_gives_up_after_its_timeout_and_leaves_the_queue() -> None:
    lock, me, other = FairLock(), object(), object()
    assert lock.acquire(me)
    assert not lock.acquire(other, timeout=0.01)
    assert lock.waiting() == 0
    assert lock.release(me)
    assert not lock.release(me)  # released once only
    assert lock.holder is None


def test_writers_that_wait_are_served_in_the_order_they_came(sqlite_db: Database) -> None:
    """Ten writers queue behind an open write transaction, one after another; when it commits and its thread
    writes again at once, they write in the order they came and the newcomer after them all. Without turns,
    SQLite's busy handler (sleeping between tries) lets the newcomer in first and the others in any order."""
    turns, errors = _turns(sqlite_db), []
    with sqlite_db.session() as s:
        s.execute(text("INSERT INTO log (who) VALUES ('first')"))
        writers = []
        for n in range(10):
            writer = _writer(sqlite_db, f"w{n}", errors)
            writer.start()
            _wait_until(lambda n=n: turns._local.waiting() == n + 1)  # noqa: SLF001 - queued in this order
            writers.append(writer)
    _writer(sqlite_db, "newcomer", errors).run()  # in this thread, right after the commit
    for writer in writers:
        writer.join()
    assert errors == []
    assert _log(sqlite_db) == ["first", *(f"w{n}" for n in range(10)), "newcomer"]


def test_an_error_in_a_write_transaction_gives_the_turn_back(sqlite_db: Database) -> None:
    turns = _turns(sqlite_db)
    with pytest.raises(RuntimeError), sqlite_db.session() as s:
        s.execute(text("INSERT INTO log (who) VALUES ('lost')"))
        assert turns._local.holder is not None  # noqa: SLF001
        raise RuntimeError("the request failed")
    assert turns._local.holder is None  # noqa: SLF001
    with pytest.raises(OperationalError), sqlite_db.session() as s:
        s.execute(text("INSERT INTO nowhere (who) VALUES ('x')"))  # a failing statement
    assert turns._local.holder is None  # noqa: SLF001
    errors: list[BaseException] = []
    other = _writer(sqlite_db, "next", errors)
    other.start()
    other.join()
    assert errors == []
    assert _log(sqlite_db) == ["next"]


def test_an_invalidated_or_abandoned_connection_gives_the_turn_back(sqlite_db: Database) -> None:
    turns = _turns(sqlite_db)
    with sqlite_db.write_engine.connect() as conn:
        conn.execute(text("INSERT INTO log (who) VALUES ('gone')"))
        conn.invalidate()
        assert turns._local.holder is None  # noqa: SLF001
    conn = sqlite_db.write_engine.connect()
    conn.execute(text("INSERT INTO log (who) VALUES ('abandoned')"))
    conn.close()  # without commit: rolled back as it goes back to the pool
    assert turns._local.holder is None  # noqa: SLF001
    with sqlite_db.session() as s:
        s.execute(text("INSERT INTO log (who) VALUES ('kept')"))
    assert _log(sqlite_db) == ["kept"]


def test_a_second_write_transaction_in_the_same_thread_fails_after_the_busy_timeout(tmp_path: Path) -> None:
    """It cannot have the turn its own first transaction holds: "database is locked" after the busy timeout, as
    SQLite alone answers — not a wait without end; the first one still commits."""
    db = make_database(make_settings(f"sqlite:///{tmp_path / 'nested.db'}", sqlite_busy_timeout_ms=50))
    try:
        with db.session() as outer:
            outer.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"))
            with pytest.raises(OperationalError, match="database is locked"), db.session() as inner:
                inner.execute(text("INSERT INTO log (who) VALUES ('inner')"))
            outer.execute(text("INSERT INTO log (who) VALUES ('outer')"))
        assert _log(db) == ["outer"]
    finally:
        db.dispose()


def test_eight_threads_write_1600_times_without_database_is_locked(tmp_path: Path) -> None:
    """Every write is served and the turn is free at the end: the longest wait is seven short transactions, far
    inside the busy timeout. The timeout is generous (5 s) because a loaded CI machine has been seen to take over
    0.4 s for seven of them; the order in which writers are served is checked above, without any clock."""
    db = make_database(make_settings(f"sqlite:///{tmp_path / 'many.db'}", sqlite_busy_timeout_ms=5000))
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"))
        errors: list[BaseException] = []

        def run(n: int) -> None:
            for _ in range(200):
                try:
                    with db.session() as s:
                        s.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": f"t{n}"})
                        s.execute(text("SELECT count(*) FROM log")).scalar_one()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [str(e) for e in errors] == []
        assert len(_log(db)) == 1600
        assert _turns(db)._local.holder is None  # noqa: SLF001
    finally:
        db.dispose()


_CHILD = """
import sys
from sqlalchemy import text
from app.db import make_database
from tests.conftest import make_settings
db = make_database(make_settings(sys.argv[1], sqlite_busy_timeout_ms=50))
with db.session() as s:
    s.execute(text("INSERT INTO log (who) VALUES ('other process')"))
print("written")
"""


def _blocked_on(path: Path) -> bool:
    """Whether a process waits in the kernel for a lock on ``path`` (``/proc/locks`` lists waiters with ->)."""
    inode = os.stat(path).st_ino
    return any(
        line.split()[1] == "->" and line.split()[6].endswith(f":{inode}")
        for line in Path("/proc/locks").read_text().splitlines()
        if len(line.split()) > 7
    )


def test_a_writer_in_another_process_waits_its_turn_past_the_busy_timeout(sqlite_db: Database) -> None:
    """Another process (a second server worker, the job worker) waits for the turn in the kernel and writes
    as soon as this one commits, though this transaction lasted longer than its 50 ms busy timeout (SQLite
    alone: "database is locked")."""
    turns = _turns(sqlite_db)
    assert turns.lock_path is not None
    with sqlite_db.session() as s:
        s.execute(text("INSERT INTO log (who) VALUES ('this process')"))
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, sqlite_db.url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_until(lambda: _blocked_on(Path(turns.lock_path or "")) or child.poll() is not None)
    out, err = child.communicate()
    assert child.returncode == 0, err
    assert out.strip() == "written"
    assert _log(sqlite_db) == ["this process", "other process"]
