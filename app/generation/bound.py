"""The generation job's in-flight bound, and how it adapts.

A job starts at the project's "requests in flight per server" and, while the server keeps up, raises it: every
``window_s`` the controller looks at the items completed per second in that window; when the bound was full
(the job had work waiting) and the rate beat the best so far by ``min_gain``, the bound grows by ``step`` (up to
``cap``). After ``patience`` windows in a row without such a gain it stops growing: the server's batch is full,
and more requests in flight would only queue there. It never lowers the bound below the configured one, so a
job never sends fewer requests at once than the setting says.

Where the server publishes its queue (vLLM's ``/metrics``: ``vllm:num_requests_waiting``), that decides instead of
the rate: requests waiting in the server's queue while the bound is full mean its batch is full, and more in flight
would only wait there (a miss); an empty queue while the bound is full means the server has room for more (raise).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


class Bound:
    """A semaphore whose limit can change while it is held (raising it wakes waiters at once)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.used >= self.limit:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future in self._waiters:
                    self._waiters.remove(future)
                self._wake()
                raise
        self.used += 1

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.used
        while free > 0 and self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                free -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@dataclass
class InFlightController:
    """Additive increase of the in-flight bound while completed items per second improve (see the module)."""

    start: int
    cap: int
    step: int
    window_s: float = 2.0
    min_gain: float = 0.05
    patience: int = 2
    bound: int = field(init=False)
    best_rate: float = field(default=0.0, init=False)
    misses: int = field(default=0, init=False)
    settled: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.start = max(1, self.start)
        self.cap = max(self.start, self.cap)
        self.step = max(1, self.step)
        self.bound = self.start

    @classmethod
    def for_concurrency(cls, concurrency: int) -> InFlightController:
        """From the configured bound: steps of half of it, up to four times it (at most 1024)."""
        return cls(start=concurrency, cap=min(1024, max(concurrency, 4 * concurrency)), step=max(1, concurrency // 2))

    def update(self, rate: float, *, saturated: bool, waiting: float | None = None) -> int:
        """One window's completed/s, whether the bound was full during it and, when the server says, the most
        requests it had waiting in its queue during the window; returns the (new) bound."""
        if self.settled or not saturated:
            return self.bound  # a window with idle slots (the tail of a job) says nothing about the server
        if waiting is not None:
            grew = waiting <= 0  # the server had room while the bound was full
        else:
            grew = rate > self.best_rate * (1 + self.min_gain)
        self.best_rate = max(self.best_rate, rate)
        if grew:
            self.misses = 0
            self.bound = min(self.cap, self.bound + self.step)
        else:
            self.misses += 1
            if self.misses >= self.patience:
                self.settled = True
        if self.bound >= self.cap:
            self.settled = True
        return self.bound
