"""The adaptive in-flight bound: the controller's decisions and the resizable semaphore (no timing)."""

from __future__ import annotations

import asyncio

import httpx

from app.generation.bound import Bound, InFlightController
from app.generation.client import Pool, Sample, candidates_for
from app.generation.schemas import GenerationSettings
from tests.support.fake_openai import FakeOpenAI


def test_raises_while_the_rate_grows_then_settles() -> None:
    c = InFlightController(start=64, cap=256, step=32)
    assert c.update(50.0, saturated=True) == 96
    assert c.update(80.0, saturated=True) == 128
    assert c.update(81.0, saturated=True) == 128  # under 5 % better: a miss
    assert not c.settled
    assert c.update(100.0, saturated=True) == 160  # a gain resets the misses
    assert c.update(100.0, saturated=True) == 160
    assert c.update(99.0, saturated=True) == 160
    assert c.settled
    assert c.update(1000.0, saturated=True) == 160  # settled: stays


def test_windows_with_idle_slots_do_not_count() -> None:
    c = InFlightController(start=8, cap=64, step=4)
    assert c.update(10.0, saturated=False) == 8
    assert c.best_rate == 0.0 and c.misses == 0
    assert c.update(10.0, saturated=True) == 12


def test_never_above_the_cap_nor_below_the_start() -> None:
    c = InFlightController.for_concurrency(64)
    assert (c.start, c.cap, c.step) == (64, 256, 32)
    bounds = [c.update(float(10 * 2**i), saturated=True) for i in range(10)]
    assert max(bounds) == 256 and min(bounds) >= 64
    assert c.settled
    assert InFlightController.for_concurrency(1).step == 1
    assert InFlightController.for_concurrency(1000).cap == 1024


def test_bound_wakes_waiters_when_raised_and_on_release() -> None:
    async def scenario() -> list[str]:
        bound = Bound(1)
        order: list[str] = []
        await bound.acquire()

        async def take(name: str) -> None:
            await bound.acquire()
            order.append(name)

        first, second = asyncio.create_task(take("a")), asyncio.create_task(take("b"))
        await asyncio.sleep(0)
        assert order == [] and bound.used == 1
        bound.set_limit(2)
        await asyncio.sleep(0)
        assert order == ["a"] and bound.used == 2
        bound.release()
        await asyncio.gather(first, second)
        assert bound.used == 2
        return order

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    async def scenario() -> int:
        bound = Bound(1)
        await bound.acquire()
        waiting = asyncio.create_task(bound.acquire())
        behind = asyncio.create_task(bound.acquire())
        await asyncio.sleep(0)
        bound.release()  # wakes ``waiting``...
        waiting.cancel()  # ...which is cancelled before it runs: ``behind`` gets the slot
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.wait_for(behind, 1)
        return bound.used

    assert asyncio.run(scenario()) == 1


def test_extra_body_reaches_the_server_and_set_bound_applies(fake: FakeOpenAI) -> None:
    settings = GenerationSettings(base_urls=[fake.base_url], model="fake", concurrency=4)

    async def scenario() -> list[Sample]:
        async with httpx.AsyncClient() as http:
            pool = Pool(settings, http)
            pool.set_bound(9)
            assert {b.limit for b in pool.limits.values()} == {9}
            return await pool.request(
                prompt="hi", model="fake", n=1, seed=3, temperature=0.5, extra_body={"logprobs": True, "top_k": 5}
            )

    samples = asyncio.run(scenario())
    assert len(samples) == 1
    sent = fake.requests[-1]
    assert sent["logprobs"] is True and sent["top_k"] == 5 and sent["seed"] == 3


def test_the_servers_queue_decides_where_it_is_known() -> None:
    c = InFlightController(start=64, cap=256, step=32)
    assert c.update(10.0, saturated=True, waiting=0.0) == 96  # room in the server while the bound was full: raise
    assert c.update(5.0, saturated=True, waiting=0.0) == 128  # even at a lower rate (a noisy window)
    assert c.update(500.0, saturated=True, waiting=12.0) == 128  # requests queue in the server: a miss
    assert not c.settled
    assert c.update(900.0, saturated=True, waiting=3.0) == 128
    assert c.settled


def test_queue_depth_is_none_without_metrics_and_not_asked_again(fake: FakeOpenAI) -> None:
    settings = GenerationSettings(base_urls=[fake.base_url], model="fake", concurrency=4)

    async def scenario() -> tuple[float | None, float | None]:
        async with httpx.AsyncClient() as http:
            pool = Pool(settings, http)
            first = await pool.queue_depth()
            asked = sum(1 for _, path, _ in fake.seen if path == "/metrics")
            second = await pool.queue_depth()
            assert sum(1 for _, path, _ in fake.seen if path == "/metrics") == asked == 1
            return first, second

    assert asyncio.run(scenario()) == (None, None)


def test_queue_depth_reads_vllm_metrics(vllm_base_url: str) -> None:
    settings = GenerationSettings(base_urls=[vllm_base_url], model="tiny-sft", concurrency=4)

    async def scenario() -> float | None:
        async with httpx.AsyncClient() as http:
            pool = Pool(settings, http)
            depth = await pool.queue_depth()
            assert pool.no_metrics == set()
            return depth

    depth = asyncio.run(scenario())
    assert depth is not None and depth >= 0


def _same_answer(payload: dict[str, object]) -> dict[str, object]:
    for choice in payload["choices"]:  # type: ignore[attr-defined]
        choice["message"]["content"] = "The same answer."
    return payload


def test_per_model_keeps_the_same_answer_of_two_models(fake: FakeOpenAI) -> None:
    """One candidate per model: two models answering alike is kept (an arena's tie), while n_seeds draws again."""
    fake.rewrite = _same_answer
    models = [{"model": "a", "model_id": 1}, {"model": "b", "model_id": 2}]
    per_model = GenerationSettings(base_urls=[fake.base_url], model="a", strategy="per_model", models=models)
    n_seeds = GenerationSettings(base_urls=[fake.base_url], model="a")

    async def scenario(settings: GenerationSettings) -> list[Sample]:
        async with httpx.AsyncClient() as http:
            return await candidates_for(Pool(settings, http), prompt="hi", k=2, seed=1)

    before = len(fake.requests)
    samples = asyncio.run(scenario(per_model))
    assert len(fake.requests) - before == 2  # one request per model, none drawn again
    assert [(s.text, s.model_id) for s in samples] == [("The same answer.", 1), ("The same answer.", 2)]
    assert samples[1].params["duplicate_of"] == 0
    before = len(fake.requests)
    asyncio.run(scenario(n_seeds))
    assert len(fake.requests) - before == 3  # n = 2, then the duplicate drawn again twice
