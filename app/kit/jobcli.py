"""What every `prefstudio <job> PROJECT` command does around its job: queue it, or claim it and run it here, then
say how it ended (exit status 1 unless done)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from app.db import Database
from app.jobs import runner
from app.jobs import service as jobs
from app.kit.errors import AppError
from app.models import Job

console = Console(stderr=True)


def run_job_command(
    db: Database,
    *,
    kind: str,
    queue: Callable[[Session], Job],
    enqueue: bool,
    queued: str,
    taken: str,
    run: Callable[[int, str, int], str],
    summary: Callable[[dict[str, Any]], str],
) -> None:
    """Queue a job with ``queue`` (one transaction; an ``AppError`` or ``ValueError`` is printed, exit 1). With
    ``enqueue``, print ``queued`` and leave it to a worker; else claim it (``taken`` when a worker was quicker),
    ``run(job_id, worker_id, total)`` to its final state, and print ``summary(job.result)`` and any error.

    ``queued`` and ``taken`` may name ``{job_id}`` and ``{total}``."""
    try:
        with db.session() as s:
            job = queue(s)
            job_id, total = job.id, job.progress_total
    except (AppError, ValueError) as exc:
        console.print(f"[red]error:[/red] {getattr(exc, 'detail', exc)}")
        raise typer.Exit(1) from exc
    if enqueue:
        console.print(queued.format(job_id=job_id, total=total))
        return
    worker_id = runner.new_worker_id()
    with db.session() as s:
        if jobs.claim(s, worker_id=worker_id, kinds=[kind], job_id=job_id) is None:
            console.print(taken.format(job_id=job_id, total=total))
            return
    state = run(job_id, worker_id, total)
    with db.session(write=False) as s:
        done = jobs.get_job(s, job_id=job_id)
        console.print(f"job #{job_id}: {state}; {summary(done.result)}")
        if done.error:
            console.print(f"[yellow]{done.error}[/yellow]")
    if state != "done":
        raise typer.Exit(1)
