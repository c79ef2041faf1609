"""Judge comparisons per second through a prefstudio judge job vs a direct saturating client, one vLLM server.

Starts a vLLM CPU server on a tiny random model (as the tests do; or uses ``--base-url``), then, on the same items
(k = 2, "overall" plus one dimension, both orders):
  direct — a client sending the very requests the job sends, at the same bound in flight;
  job    — a prefstudio judge job (SQLite), storing every suggestion.
Prints comparisons/s of each and the ratio (target ≥ 0.9).

    python bench/judge.py [--items 100] [--concurrency 64] [--repeat 3] [--base-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import make_database  # noqa: E402
from app.jobs import service as jobs  # noqa: E402
from app.judge import rubric  # noqa: E402
from app.judge.client import request_body  # noqa: E402
from app.judge.schemas import JudgeServer, JudgeSettings  # noqa: E402
from app.judge.tasks import run_judge_job  # noqa: E402
from app.models import Candidate, Item, Project  # noqa: E402
from tests.support import vllm  # noqa: E402

DIMENSION = {"key": "helpful", "label": "Helpful", "description": "Answers what was asked."}
OVERALL = {"key": "overall", "label": "Overall", "description": "Which answer is better overall."}


def items(n: int) -> list[tuple[str, list[str]]]:
    return [(f"Question {i}: what is preference data?", [f"Pairs of answers {i}.", f"No idea {i}."]) for i in range(n)]


async def direct(base: str, data: list[tuple[str, list[str]]], concurrency: int) -> float:
    settings = JudgeSettings(judges=[JudgeServer(base_url=base, model=vllm.MODEL_NAME)], concurrency=concurrency)
    judge = settings.judges[0]
    bodies = []
    for prompt, texts in data:
        for dim in (OVERALL, DIMENSION):
            for shown in rubric.shown_orders([0, 1]):
                text = rubric.build_prompt(
                    settings.effective_rubric(), guidelines="", dimension=dim, prompt=prompt,
                    texts=[texts[i] for i in shown], max_chars=settings.max_candidate_chars,
                )  # fmt: skip
                bodies.append(request_body(settings, judge, text, 2))
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None)) as client:

        async def one(path: str, body: dict[str, object]) -> None:
            async with limit:
                (await client.post(base + path, json=body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(p, b) for p, b in bodies))
        return len(bodies) / (time.perf_counter() - started)


def through_job(base: str, data: list[tuple[str, list[str]]], concurrency: int) -> float:
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")
    db = make_database(Settings(environment="dev", database_url=url))
    settings = JudgeSettings(judges=[JudgeServer(base_url=base, model=vllm.MODEL_NAME)], concurrency=concurrency)
    with db.session() as s:
        project = Project(slug="b", name="b", k=2, overlap=1, dimensions=[DIMENSION], judge=settings.model_dump())
        s.add(project)
        s.flush()
        for i, (prompt, texts) in enumerate(data):
            item = Item(project_id=project.id, prompt=prompt, prompt_hash=str(i), status="ready")
            s.add(item)
            s.flush()
            s.add_all(Candidate(item_id=item.id, round=0, position=p, text=t) for p, t in enumerate(texts))
        params = {"judges": [f"{vllm.MODEL_NAME}@{base}"], "prompt_version": settings.prompt_version}
        job = jobs.enqueue(s, kind="judge", project_id=project.id, params=params, total=len(data))
        jobs.claim(s, worker_id="bench", kinds=["judge"])
        job_id = job.id
    started = time.perf_counter()
    state = asyncio.run(run_judge_job(db, job_id, worker_id="bench"))
    elapsed = time.perf_counter() - started
    with db.session(write=False) as s:
        done = jobs.get_job(s, job_id=job_id).result["comparisons"]
    assert state == "done" and done == len(data) * 4, (state, done)
    return float(done) / elapsed


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
        return
    python = vllm.vllm_python()
    if python is None:
        sys.exit("vLLM virtualenv not found: run .ci/run once or set PREFSTUDIO_TEST_VLLM_PYTHON")
    work = Path(tempfile.mkdtemp())
    with vllm.vllm_server(python, vllm.build_tiny_model(python, work / "model"), work / "vllm.log") as base:
        yield base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base-url", default=None, help="a running vLLM server of the tiny model")
    args = parser.parse_args()
    data = items(args.items)
    with server(args.base_url) as base:
        asyncio.run(direct(base, data, args.concurrency))  # warm-up: kernels for new batch shapes
        directs, jobs_ = [], []
        for _ in range(args.repeat):  # interleaved, medians: a shared machine makes single runs noisy
            directs.append(asyncio.run(direct(base, data, args.concurrency)))
            jobs_.append(through_job(base, data, args.concurrency))
    d, j = statistics.median(directs), statistics.median(jobs_)
    print(f"items={args.items} comparisons={args.items * 4} concurrency={args.concurrency} repeats={args.repeat}")
    print(f"direct client   {d:8.1f} comparisons/s")
    print(f"prefstudio job  {j:8.1f} comparisons/s   job/direct = {j / d:.2f}")


if __name__ == "__main__":
    main()
