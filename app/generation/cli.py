"""`prefstudio generate PROJECT`: queue a generation job and, unless told to leave it to a worker, run it here."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import make_database
from app.generation import rounds, service
from app.generation.schemas import JobIn
from app.generation.tasks import run_generation_job
from app.jobs import runner
from app.kit.jobcli import run_job_command
from app.models import Job
from app.ops.logs import configure_logging
from app.projects.deps import project_by_slug

console = Console(stderr=True)


def generate_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    items: Annotated[
        str | None, typer.Option(help="Comma-separated item ids (regenerates those with candidates)")
    ] = None,
    all_bad: Annotated[bool, typer.Option("--all-bad", help="Regenerate items judged 'all bad'")] = False,
    all_ready: Annotated[
        bool, typer.Option("--all-ready", help="Regenerate every item with candidates (gold items left out)")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="A new round from this registered model (name or id; it needs an endpoint)")
    ] = None,
    mix_previous: Annotated[
        bool, typer.Option("--mix-previous", help="With --model: one candidate of each item from the current policy")
    ] = False,
    enqueue: Annotated[bool, typer.Option("--enqueue", help="Only queue the job for `prefstudio worker`")] = False,
) -> None:
    """Generate candidates for the items without any (or chosen / 'all bad' / all items) with the project's model,
    or as a new round from a registered model (--model)."""
    db = make_database(get_settings())
    selection = "all_bad" if all_bad else "all_ready" if all_ready else ("ids" if items else "missing")

    def queue(s: Session) -> Job:
        ids = [int(x) for x in items.split(",")] if items else []
        found = project_by_slug(s, project)
        model_id = rounds.model_id_of(s, project=found, reference=model) if model else None
        request = JobIn(selection=selection, item_ids=ids, model_id=model_id, mix_previous=mix_previous)
        return service.start_job(s, project=found, request=request, user_id=None)

    def run(job_id: int, worker_id: str, total: int) -> str:
        columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("items", total=total)
            return asyncio.run(
                run_generation_job(
                    db, job_id, worker_id=worker_id, on_progress=lambda done, _t: bar.update(task, completed=done)
                )
            )

    run_job_command(
        db,
        kind=service.KIND,
        queue=queue,
        enqueue=enqueue,
        queued="queued job #{job_id} ({total} items); `prefstudio worker` will run it",
        taken="job #{job_id} was taken by a running worker; follow it on the project's generation page",
        run=run,
        summary=lambda result: (
            f"{result.get('candidates', 0)} candidates, {result.get('retries', 0)} retries, "
            f"{result.get('failed_items', 0)} failed items"
        ),
    )


def worker_command(
    poll: Annotated[float, typer.Option(help="Seconds between looks for new jobs")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Exit when no job is waiting")] = False,
) -> None:
    """Run background jobs (generation) until stopped with Ctrl-C or SIGTERM."""
    settings = get_settings()
    if configure_logging(settings) is None:  # PREFSTUDIO_LOG_FORMAT=json: the worker's records as JSON lines too
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner.run_worker(make_database(settings), poll_s=poll, once=once)
