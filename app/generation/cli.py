"""`prefstudio generate PROJECT`: queue a generation job and, unless told to leave it to a worker, run it here."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.config import get_settings
from app.db import make_database
from app.generation import service
from app.generation.schemas import JobIn
from app.generation.tasks import run_generation_job
from app.jobs import runner
from app.jobs import service as jobs
from app.kit.errors import AppError
from app.projects.deps import project_by_slug

console = Console(stderr=True)


def generate_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    items: Annotated[
        str | None, typer.Option(help="Comma-separated item ids (regenerates those with candidates)")
    ] = None,
    all_bad: Annotated[bool, typer.Option("--all-bad", help="Regenerate items judged 'all bad'")] = False,
    enqueue: Annotated[bool, typer.Option("--enqueue", help="Only queue the job for `prefstudio worker`")] = False,
) -> None:
    """Generate candidates for the items without any (or chosen / 'all bad' items) with the project's model."""
    db = make_database(get_settings())
    selection = "all_bad" if all_bad else ("ids" if items else "missing")
    try:
        ids = [int(x) for x in items.split(",")] if items else []
        with db.session() as s:
            job = service.start_job(
                s, project=project_by_slug(s, project), request=JobIn(selection=selection, item_ids=ids), user_id=None
            )
            job_id, total = job.id, job.progress_total
    except (AppError, ValueError) as exc:
        console.print(f"[red]error:[/red] {getattr(exc, 'detail', exc)}")
        raise typer.Exit(1) from exc
    if enqueue:
        console.print(f"queued job #{job_id} ({total} items); `prefstudio worker` will run it")
        return
    worker_id = runner.new_worker_id()
    with db.session() as s:
        if jobs.claim(s, worker_id=worker_id, kinds=[service.KIND], job_id=job_id) is None:
            console.print(f"job #{job_id} was taken by a running worker; follow it on the project's generation page")
            return
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("items", total=total)
        state = asyncio.run(
            run_generation_job(
                db, job_id, worker_id=worker_id, on_progress=lambda done, _t: bar.update(task, completed=done)
            )
        )
    with db.session(write=False) as s:
        job = jobs.get_job(s, job_id=job_id)
        console.print(
            f"job #{job_id}: {state}; {job.result.get('candidates', 0)} candidates, "
            f"{job.result.get('retries', 0)} retries, {job.result.get('failed_items', 0)} failed items"
        )
        if job.error:
            console.print(f"[yellow]{job.error}[/yellow]")
    if state != "done":
        raise typer.Exit(1)


def worker_command(
    poll: Annotated[float, typer.Option(help="Seconds between looks for new jobs")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Exit when no job is waiting")] = False,
) -> None:
    """Run background jobs (generation) until stopped with Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner.run_worker(make_database(get_settings()), poll_s=poll, once=once)
