"""Process-local caches: one kind for the whole app, bounded, safe across a worker's threads.

Each cache is made here with a name, a size and how long an entry lives (fixed, decided by the value, or until
it is pushed out); ``caches()`` lists them all (docs/architecture.md says why each exists) and ``clear_all``
empties them (tests that recreate a database). The storage and the expiry are ``cachetools``'; this module adds
the lock, the hit counts and the registry.

A cache here never decides whether data is current: every user of one states, where it is made, what keys it and
what makes an entry stale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_REGISTRY: dict[str, Cache[object, object]] = {}


class Cache(Generic[K, V]):
    """``size`` entries at most (least recently used out first); with ``ttl`` an entry lives that many seconds,
    or as many as ``ttl(value)`` says (0: not kept at all)."""

    def __init__(self, name: str, size: int, *, ttl: float | Callable[[V], float] | None = None) -> None:
        self.name = name
        self.size = size
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._entries: cachetools.Cache[K, V]
        if ttl is None:
            self._entries = cachetools.LRUCache(maxsize=size)
        else:
            life: Callable[[V], float] = ttl if callable(ttl) else (lambda _value: ttl)
            self._entries = cachetools.TLRUCache(
                maxsize=size, ttu=lambda _key, value, now: now + life(value), timer=time.monotonic
            )
        if name in _REGISTRY:
            raise ValueError(f"a cache named {name!r} exists already")
        _REGISTRY[name] = self  # type: ignore[assignment]

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            try:
                self._entries[key] = value
            except KeyError:  # a value whose life is 0 is not kept (cachetools refuses it so)
                pass

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._entries.keys())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


def caches() -> list[Cache[object, object]]:
    """Every cache of this process, by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def clear_all() -> None:
    for cache in _REGISTRY.values():
        cache.clear()
