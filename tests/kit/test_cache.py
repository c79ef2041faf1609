"""The one cache kind: bounded, least recently used out first, entries that live as long as their value says."""

from __future__ import annotations

import threading
import time

import pytest

from app.kit.cache import Cache, caches, clear_all


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"test.{request.node.name}.{time.monotonic_ns()}"


def test_the_least_recently_used_entry_goes_first(name: str) -> None:
    cache: Cache[str, int] = Cache(name, 2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert sorted(cache.keys()) == ["a", "c"]
    assert (cache.hits, cache.misses) == (1, 0)
    assert cache.get("b") is None
    assert cache.misses == 1


def test_an_entry_lives_as_long_as_its_value_says(name: str) -> None:
    cache: Cache[str, float] = Cache(name, 8, ttl=lambda seconds: seconds)
    cache.put("never", 0.0)
    cache.put("short", 0.05)
    cache.put("long", 60.0)
    assert cache.get("never") is None
    assert cache.get("short") == 0.05
    time.sleep(0.1)
    assert cache.get("short") is None
    assert cache.get("long") == 60.0
    cache.put("long", 0.0)  # replaced by a value that is not kept: the old one goes too
    assert cache.get("long") is None


def test_a_fixed_life_applies_to_every_entry(name: str) -> None:
    cache: Cache[str, str] = Cache(name, 8, ttl=0.05)
    cache.put("k", "v")
    assert cache.get("k") == "v"
    time.sleep(0.1)
    assert cache.get("k") is None


def test_every_cache_is_listed_and_cleared_together(name: str) -> None:
    first: Cache[int, int] = Cache(name + ".1", 4)
    second: Cache[int, int] = Cache(name + ".2", 4, ttl=60)
    first.put(1, 1)
    second.put(2, 2)
    assert {first.name, second.name} <= {cache.name for cache in caches()}
    clear_all()
    assert (len(first), len(second)) == (0, 0)


def test_two_caches_cannot_share_a_name(name: str) -> None:
    Cache(name, 1)
    with pytest.raises(ValueError, match="exists already"):
        Cache(name, 1)


def test_threads_writing_at_once_leave_it_within_its_size(name: str) -> None:
    cache: Cache[int, int] = Cache(name, 64, ttl=60)

    def write(offset: int) -> None:
        for i in range(2_000):
            cache.put(offset + i, i)
            cache.get(offset + i // 2)

    threads = [threading.Thread(target=write, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 64
    assert cache.hits + cache.misses == 8_000
