"""`prefstudio judge PROJECT`: queue a judge job and, unless told to leave it to a worker, run it here."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from app.config import get_settings
from app.db import make_database
from app.jobs import runner
from app.jobs import service as jobs
from app.judge import service
from app.judge.schemas import JudgeJobIn
from app.judge.tasks import run_judge_job
from app.kit.errors import AppError
from app.projects.deps import project_by_slug

console = Console(stderr=True)


def judge_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    judge: Annotated[str | None, typer.Option(help='Only this judge ("model@base_url")')] = None,
    enqueue: Annotated[bool, typer.Option("--enqueue", help="Only queue the job for `prefstudio worker`")] = False,
) -> None:
    """Ask the project's judge models for suggestions on every item with candidates (both orders)."""
    db = make_database(get_settings())
    try:
        with db.session() as s:
            job = service.start_job(
                s, project=project_by_slug(s, project), request=JudgeJobIn(judge=judge), user_id=None
            )
            job_id, total = job.id, job.progress_total
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    if enqueue:
        console.print(f"queued judge job #{job_id} ({total} items × judges); `prefstudio worker` will run it")
        return
    worker_id = runner.new_worker_id()
    with db.session() as s:
        if jobs.claim(s, worker_id=worker_id, kinds=[service.KIND], job_id=job_id) is None:
            console.print(f"job #{job_id} was taken by a running worker")
            return
    state = asyncio.run(run_judge_job(db, job_id, worker_id=worker_id))
    with db.session(write=False) as s:
        done = jobs.get_job(s, job_id=job_id)
        console.print(f"job #{job_id}: {state}; {done.result.get('suggestions', 0)} suggestions")
        if done.error:
            console.print(f"[yellow]{done.error}[/yellow]")
    if state != "done":
        raise typer.Exit(1)
