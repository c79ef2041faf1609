"""Candidates per second through a prefstudio generation job vs a direct client, against one vLLM server.

Starts a vLLM CPU server on a tiny random model (as the tests do), then, on the same prompt set:
  ceiling  — a direct client that sends every request at once;
  floor    — a direct client that sends one request at a time;
  job      — a prefstudio generation job (SQLite), storing every candidate.
Prints candidates/s of each and the job's ratio to the ceiling (target ≥ 0.9).

    python bench/generation.py [--prompts 200] [--k 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import make_database  # noqa: E402
from app.generation.tasks import run_generation_job  # noqa: E402
from app.jobs import service as jobs  # noqa: E402
from app.models import Item, Project  # noqa: E402
from tests.support import vllm  # noqa: E402


def prompts(n: int) -> list[str]:
    return [f"Question {i}: what makes an answer helpful, harmless and honest?" for i in range(n)]


async def direct(
    base: str, texts: list[str], k: int, max_tokens: int, *, at_once: bool, bound: int | None = None
) -> float:
    """A plain client: every request at once (``bound`` None), at most ``bound`` in flight, or one at a time."""
    limit = asyncio.Semaphore(bound or len(texts))
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=None)) as client:

        async def one(i: int, text: str) -> int:
            async with limit:
                return await send(i, text)

        async def send(i: int, text: str) -> int:
            r = await client.post(
                base + "/v1/chat/completions",
                json={
                    "model": vllm.MODEL_NAME,
                    "messages": [{"role": "user", "content": text}],
                    "n": k,
                    "seed": 1000 + i,
                    "max_tokens": max_tokens,
                    "temperature": 1.0,
                    "logprobs": True,
                },
            )
            r.raise_for_status()
            return len(r.json()["choices"])

        started, cpu = time.perf_counter(), time.process_time()
        if at_once:
            counts = await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))
        else:
            counts = [await one(i, t) for i, t in enumerate(texts)]
        elapsed = time.perf_counter() - started
        print(
            f"direct (at_once={at_once}, bound={bound}): {elapsed:.2f} s wall, {time.process_time() - cpu:.2f} s CPU in this process"
        )
        return sum(counts) / elapsed


def through_job(base: str, texts: list[str], k: int, max_tokens: int, concurrency: int) -> float:
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")
    db = make_database(Settings(environment="dev", database_url=url))
    with db.session() as s:
        project = Project(
            slug="b",
            name="b",
            k=k,
            overlap=1,
            generation={
                "base_urls": [base],
                "model": vllm.MODEL_NAME,
                "max_tokens": max_tokens,
                "concurrency": concurrency,
            },
        )
        s.add(project)
        s.flush()
        s.add_all(
            Item(project_id=project.id, prompt=t, prompt_hash=str(i), status="pending") for i, t in enumerate(texts)
        )
        s.flush()
        job = jobs.enqueue(s, kind="generate", project_id=project.id, params={"selection": "missing"}, total=len(texts))
        jobs.claim(s, worker_id="bench", kinds=["generate"])
        job_id = job.id
    started, cpu = time.perf_counter(), time.process_time()
    state = asyncio.run(run_generation_job(db, job_id, worker_id="bench"))
    elapsed = time.perf_counter() - started
    print(f"job: {elapsed:.2f} s wall, {time.process_time() - cpu:.2f} s CPU in this process")
    with db.session(write=False) as s:
        job = jobs.get_job(s, job_id=job_id)
        stored = job.result["candidates"]
    assert state == "done" and stored == len(texts) * k, (state, stored)
    return stored / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=64, help="also measured: every prompt in flight")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    python = vllm.vllm_python()
    if python is None:
        sys.exit("vLLM virtualenv not found: run .ci/run once or set PREFSTUDIO_TEST_VLLM_PYTHON")
    work = Path(tempfile.mkdtemp())
    model = vllm.build_tiny_model(python, work / "model")
    texts = prompts(args.prompts)
    with vllm.vllm_server(python, model, work / "vllm.log") as base:
        # Warm-up: the CPU build compiles kernels for batch shapes it has not seen yet.
        asyncio.run(direct(base, texts, args.k, args.max_tokens, at_once=True))
        through_job(base, texts, args.k, args.max_tokens, args.concurrency)
        levels = sorted({args.concurrency, len(texts)})
        ceilings: list[float] = []
        jobs_: dict[int, list[float]] = {c: [] for c in levels}
        bounded: list[float] = []
        for _ in range(args.repeat):  # interleaved, medians: two cores make single runs noisy
            ceilings.append(asyncio.run(direct(base, texts, args.k, args.max_tokens, at_once=True)))
            bounded.append(
                asyncio.run(direct(base, texts, args.k, args.max_tokens, at_once=True, bound=args.concurrency))
            )
            for c in levels:
                jobs_[c].append(through_job(base, texts, args.k, args.max_tokens, c))
        ceiling = statistics.median(ceilings)
        floor = asyncio.run(direct(base, texts[: max(20, len(texts) // 5)], args.k, args.max_tokens, at_once=False))
    print(f"prompts={args.prompts} k={args.k} max_tokens={args.max_tokens} repeats={args.repeat} (medians)")
    print(f"ceiling (all at once)            {ceiling:8.1f} candidates/s")
    print(f"floor (one at a time)            {floor:8.1f} candidates/s")
    same_bound = statistics.median(bounded)
    print(
        f"direct, {args.concurrency:4d} in flight          {same_bound:8.1f} candidates/s   (the server at the job's default bound)"
    )
    at_default = statistics.median(jobs_[args.concurrency])
    print(
        f"target: the job at {args.concurrency} in flight ≥ 0.9 × the ceiling: {at_default / ceiling:.2f} "
        + ("(met)" if at_default >= 0.9 * ceiling else "(not met)")
    )
    for c in levels:
        job = statistics.median(jobs_[c])
        print(
            f"prefstudio job, {c:4d} in flight  {job:8.1f} candidates/s   "
            f"job/ceiling = {job / ceiling:.2f}   job/floor = {job / floor:.1f}"
            + (f"   job/direct at the same bound = {job / same_bound:.2f}" if c == args.concurrency else "")
        )


if __name__ == "__main__":
    main()
