"""People's requests in flight, seen by background work on the same machine so that it can give way to them.

A server on a small machine does two kinds of work at once: people's requests (a next item, a submit, a page),
where every millisecond shows, and bulk work nobody watches by the millisecond (an export streaming a million
pairs). Lowering the bulk work's CPU priority is not enough: on the 2-vCPU virtual machines this was measured on,
any process computing beside a request slowed it, whatever its priority (two busy loops under ``SCHED_IDLE``
raised the annotators' p99 from 43 to 77 ms). So the bulk work pauses while a request is in flight and goes on
in the gaps between requests, which at the pace people work are most of the time.

The signal is a small memory-mapped file under the data directory (one per installation, shared by every
process that uses that directory): one slot per server process, holding its number of requests in flight and
when that number last changed. A server process takes a free slot under an ``fcntl`` lock, held for its life
(a process that dies loses the lock, and the next one to take the slot clears it). Readers take no lock: a
slot is two 8-byte words, each written whole. A count that has not changed for ``STALE_NS`` is not trusted
(a process killed mid-request, or one request that takes seconds): the bulk work goes on.

Where ``fcntl`` does not exist (Windows) the board reports nothing and the bulk work never waits.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from starlette.types import ASGIApp, Receive, Scope, Send

FILE_NAME = ".activity"
SLOTS = 64  # server processes on one machine that can report (more report nothing, and are not waited for)
WORDS = 2  # per slot: requests in flight, when that last changed (time.monotonic_ns)
STALE_NS = 2_000_000_000
POLL_S = 0.002  # how often a waiting reader looks again

_boards: weakref.WeakValueDictionary[Path, Board] = weakref.WeakValueDictionary()
_boards_lock = threading.Lock()


class Board:
    """The activity file of one data directory, mapped into this process (one per process and path: see
    ``board_for``; closing a second descriptor of the file would drop this process's slot lock). The file is
    closed when the board is no longer used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._words: memoryview | None = None
        self._slot: int | None = None
        self._slot_pid = 0
        size = SLOTS * WORDS * 8
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only data directory: nothing is reported, nobody waits
            return
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # new pages read as zeros: every slot idle
            mapped = mmap.mmap(fd, size)
        except (OSError, ValueError):  # a full disk, a file system without shared mappings: as above
            os.close(fd)
            return
        self._fd = fd
        self._words = memoryview(mapped).cast("q")
        weakref.finalize(self, _close, fd, mapped, self._words)

    # --- a server process's side ---

    def _own_slot(self) -> int | None:
        """This process's slot, taken on first use (again after a fork: locks are not inherited)."""
        if self._slot is not None and self._slot_pid == os.getpid():
            return self._slot
        self._slot = None
        if self._fd is None or self._words is None or fcntl is None:
            return None
        for slot in range(SLOTS):
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, WORDS * 8, slot * WORDS * 8, os.SEEK_SET)
            except OSError:
                continue  # held by a live process
            self._words[slot * WORDS] = 0  # whatever a process that died left
            self._words[slot * WORDS + 1] = time.monotonic_ns()
            self._slot, self._slot_pid = slot, os.getpid()
            return slot
        return None

    def enter(self) -> None:
        """A request of this process begins."""
        self._count(1)

    def leave(self) -> None:
        """A request of this process has ended."""
        self._count(-1)

    def _count(self, delta: int) -> None:
        slot = self._own_slot()
        if slot is not None:
            words = self._words
            assert words is not None
            words[slot * WORDS] = max(0, words[slot * WORDS] + delta)
            words[slot * WORDS + 1] = time.monotonic_ns()

    # --- a reader's side ---

    def in_flight(self) -> int:
        """Requests in flight on every server process of this data directory (stale counts left out)."""
        words = self._words
        if words is None:
            return 0
        now = time.monotonic_ns()
        total = 0
        for at in range(0, SLOTS * WORDS, WORDS):
            count = words[at]
            if count > 0 and now - words[at + 1] < STALE_NS:
                total += count
        return total

    def give_way(self, max_wait: float) -> float:
        """Wait while any request is in flight, at most ``max_wait`` seconds; the seconds waited."""
        if max_wait <= 0 or not self.in_flight():
            return 0.0
        start = time.monotonic()
        while (waited := time.monotonic() - start) < max_wait and self.in_flight():
            time.sleep(POLL_S)
        return waited


def _close(fd: int, mapped: mmap.mmap, words: memoryview) -> None:
    words.release()
    mapped.close()
    os.close(fd)


def board_for(data_dir: Path) -> Board:
    """This process's board for ``data_dir`` (made on first use)."""
    path = Path(data_dir).resolve() / FILE_NAME
    with _boards_lock:
        board = _boards.get(path)
        if board is None:
            board = _boards[path] = Board(path)
        return board


def pacer(data_dir: Path, max_wait: float) -> Callable[[], Any] | None:
    """A function for bulk work to call between small steps: it returns once no request is in flight (or after
    ``max_wait`` s, so that the work always moves on). None when ``max_wait`` is 0: never wait."""
    if max_wait <= 0:
        return None
    board = board_for(data_dir)
    return lambda: board.give_way(max_wait)


class ActivityMiddleware:
    """Counts this process's requests in flight on the board, except those that are bulk work themselves
    (paths ending in ``.jsonl``: the export and snapshot downloads) and static files."""

    def __init__(self, app: ASGIApp, data_dir: Path) -> None:
        self.app = app
        self.data_dir = data_dir
        self._board: Board | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.endswith(".jsonl") or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        board = self._board
        if board is None:
            board = self._board = board_for(self.data_dir)
        board.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            board.leave()
