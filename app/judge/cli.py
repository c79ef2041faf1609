"""`prefstudio judge PROJECT`: queue a judge job and, unless told to leave it to a worker, run it here."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.config import get_settings
from app.db import make_database
from app.judge import service
from app.judge.schemas import JudgeJobIn
from app.judge.tasks import run_judge_job
from app.kit.jobcli import run_job_command
from app.projects.deps import project_by_slug


def judge_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    judge: Annotated[str | None, typer.Option(help='Only this judge ("model@base_url")')] = None,
    enqueue: Annotated[bool, typer.Option("--enqueue", help="Only queue the job for `prefstudio worker`")] = False,
) -> None:
    """Ask the project's judge models for suggestions on every item with candidates (both orders)."""
    db = make_database(get_settings())
    run_job_command(
        db,
        kind=service.KIND,
        queue=lambda s: service.start_job(
            s, project=project_by_slug(s, project), request=JudgeJobIn(judge=judge), user_id=None
        ),
        enqueue=enqueue,
        queued="queued judge job #{job_id} ({total} items × judges); `prefstudio worker` will run it",
        taken="job #{job_id} was taken by a running worker",
        run=lambda job_id, worker_id, _total: asyncio.run(run_judge_job(db, job_id, worker_id=worker_id)),
        summary=lambda result: f"{result.get('suggestions', 0)} suggestions",
    )
