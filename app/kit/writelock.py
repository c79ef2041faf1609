"""Fair turns at SQLite's write lock.

SQLite lets one transaction write at a time. A writer that finds the lock taken waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, … 100 ms between tries: the writer that has waited longest keeps losing the lock to
newer ones that happen to ask just after a commit (with five annotators: p99 ~200 ms, stalls of 0.328 s plus a
multiple of 0.1 s, up to 2.7 s).

So a write transaction first takes its turn here, and finds SQLite's lock free when it asks for it:

- within a process, a queue served first come, first served: the holder hands the turn straight to the thread
  that has waited longest (``FairLock``; ``threading.Lock`` promises no order);
- between processes (uvicorn's workers, the job worker), a POSIX lock on a file beside the database
  (``<database>-writer``), waited for in the kernel, which wakes the waiter the moment it is released instead
  of after a sleep. One thread of a process at a time waits there.

The turn is taken before ``BEGIN IMMEDIATE`` and given back after ``COMMIT`` or ``ROLLBACK``, or when the
connection goes back to the pool, is invalidated or closed — an error cannot keep it. A turn belongs to the
connection, not to a thread: a request's transaction may begin in one worker thread and commit in another.
A thread that opened a second write transaction while its first is open would wait for itself: it gets
"database is locked" after the busy timeout, as it would from SQLite without turns. SQLite's busy handler still
arbitrates with processes that do not take turns (a ``sqlite3`` shell, an older server).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.exc import OperationalError

try:
    import fcntl
except ImportError:  # not POSIX: turns within each process only
    fcntl = None  # type: ignore[assignment]


@dataclass(eq=False)
class _Waiter:
    owner: object
    served: threading.Event = field(default_factory=threading.Event)


class FairLock:
    """A lock held by an owner (any object), handed to the waiters in the order they came."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: object | None = None
        self._waiters: deque[_Waiter] = deque()  # not empty only while someone holds the lock

    @property
    def holder(self) -> object | None:
        return self._holder

    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, owner: object, timeout: float | None = None) -> bool:
        """Wait for the lock (at most ``timeout`` seconds); True once ``owner`` holds it."""
        with self._mutex:
            if self._holder is None or self._holder is owner:
                self._holder = owner
                return True
            waiter = _Waiter(owner)
            self._waiters.append(waiter)
        if waiter.served.wait(timeout):
            return True
        with self._mutex:
            if waiter.served.is_set():  # handed over as the wait ran out
                return True
            self._waiters.remove(waiter)
            return False

    def release(self, owner: object) -> bool:
        """Hand the lock to the longest waiter; False (and nothing done) if ``owner`` does not hold it."""
        with self._mutex:
            if self._holder is not owner or owner is None:
                return False
            if self._waiters:
                nxt = self._waiters.popleft()
                self._holder = nxt.owner
                nxt.served.set()
            else:
                self._holder = None
            return True


class WriteTurns:
    """Turns at one SQLite database's write lock, for the connections of this process."""

    def __init__(self, lock_path: str | None, *, timeout_s: float) -> None:
        self.lock_path = lock_path
        self.timeout_s = timeout_s
        self._pid = os.getpid()
        self._local = FairLock()
        self._file: IO[bytes] | None = None

    def _after_fork(self) -> None:
        # A child process inherits neither the parent's POSIX locks nor, usefully, its queue.
        self._pid = os.getpid()
        self._local = FairLock()
        self._file = None

    def held_by(self, owner: object) -> bool:
        return self._local.holder is owner

    def take(self, owner: object) -> None:
        """Wait for ``owner``'s turn: first in this process, then among processes."""
        if os.getpid() != self._pid:
            self._after_fork()
        if not self._local.acquire(owner, self.timeout_s):
            # As SQLAlchemy reports SQLite's own "database is locked" after the busy timeout.
            reason = sqlite3.OperationalError(
                f"database is locked (no turn to write within {self.timeout_s:g} s: "
                "is a write transaction open in this thread already?)"
            )
            raise OperationalError("BEGIN IMMEDIATE", {}, reason)
        try:
            if self.lock_path is not None and fcntl is not None:
                if self._file is None:
                    self._file = open(self.lock_path, "ab")  # noqa: SIM115 - kept open: closing drops the lock
                fcntl.lockf(self._file, fcntl.LOCK_EX)  # the kernel wakes the waiter when it is released
        except BaseException:
            self._local.release(owner)
            raise

    def give_back(self, owner: object) -> None:
        """End ``owner``'s turn, if it has one (safe to call again, or for a connection without a turn)."""
        if owner is None or self._local.holder is not owner or os.getpid() != self._pid:
            return
        try:
            if self._file is not None and fcntl is not None:
                fcntl.lockf(self._file, fcntl.LOCK_UN)
        finally:
            self._local.release(owner)


def lock_path_for(database: str | None) -> str | None:
    """The turn file of a SQLite database file; None for an in-memory database (one process only)."""
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writer"


def raw_connection(connection: Any) -> Any:
    """The DBAPI connection behind a pool's proxy (SQLAlchemy passes either, depending on the hook)."""
    return getattr(connection, "dbapi_connection", None) or connection
