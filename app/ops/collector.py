"""The figures ``/metrics`` reads from the database at scrape time: right whatever the number of app processes and
workers, since they count rows rather than events a process saw.

Each is a few indexed statements per scrape, never one per request:

- queue depth: a project's ready items that still want judgments (the annotation page's "finished" rule,
  ``app.annotation.overlap.complete_clause``), one count over the project's ready items (``ix_item_queue``);
- judgments per minute: a project's judgments made in the last 60 s (``ix_judgment_project_created_at``);
- jobs: queued and running jobs by kind, and the running ones' progress (done / total) and retries so far
  (``ix_job_state_created_at``).

Per-project series are labelled by the project's slug, for the newest ``metrics_max_projects`` projects;
``prefstudio_metrics_projects_omitted`` says how many more there are (their figures are not read at all).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, not_, select
from sqlalchemy.orm import Session

from app.annotation.overlap import complete_clause
from app.db import Database, serial_plan
from app.models import Item, Job, Judgment, Project, utcnow

JUDGMENT_WINDOW = timedelta(minutes=1)


@dataclass
class ProjectFigures:
    slug: str
    queue_depth: int
    judgments_last_minute: int


@dataclass
class JobFigures:
    queued: int = 0
    running: int = 0
    done: int = 0  # progress of the running jobs, summed
    total: int = 0
    retries: int = 0


@dataclass
class Figures:
    projects: list[ProjectFigures] = field(default_factory=list)
    omitted: int = 0
    jobs: dict[str, JobFigures] = field(default_factory=dict)


def read_figures(session: Session, *, max_projects: int) -> Figures:
    """What the database says now: per project (the newest ``max_projects``) and per job kind."""
    figures = Figures()
    rows = session.execute(
        select(Project.id, Project.slug, Project.overlap, Project.overlap_min)
        .order_by(Project.id.desc())
        .limit(max_projects + 1)
    ).all()
    if len(rows) > max_projects:
        figures.omitted = int(session.scalar(select(func.count()).select_from(Project)) or 0) - max_projects
        rows = rows[:max_projects]
    since = utcnow() - JUDGMENT_WINDOW
    with serial_plan(session):  # a count over a large project's items must not take every CPU
        for project_id, slug, overlap, overlap_min in rows:
            depth = session.scalar(
                select(func.count()).where(
                    Item.project_id == project_id,
                    Item.status == "ready",
                    not_(complete_clause(overlap, overlap_min)),
                )
            )
            recent = session.scalar(
                select(func.count()).where(Judgment.project_id == project_id, Judgment.created_at >= since)
            )
            figures.projects.append(ProjectFigures(slug, int(depth or 0), int(recent or 0)))
    figures.jobs = read_jobs(session)
    return figures


def read_jobs(session: Session) -> dict[str, JobFigures]:
    """Queued and running jobs by kind, with the running ones' progress and retries (from their results)."""
    jobs: defaultdict[str, JobFigures] = defaultdict(JobFigures)
    for kind, state, done, total, result in session.execute(
        select(Job.kind, Job.state, Job.progress_done, Job.progress_total, Job.result).where(
            Job.state.in_(("queued", "running"))
        )
    ):
        figures = jobs[kind]
        if state == "queued":
            figures.queued += 1
            continue
        figures.running += 1
        figures.done += done
        figures.total += total
        retries = result.get("retries") if isinstance(result, dict) else None
        figures.retries += retries if isinstance(retries, int) else 0
    return dict(jobs)


def metric_families(figures: Figures) -> list[Metric]:
    """The figures as Prometheus gauges."""
    queue = GaugeMetricFamily(
        "prefstudio_queue_depth", "Ready items of a project that still want judgments.", labels=["project"]
    )
    rate = GaugeMetricFamily(
        "prefstudio_judgments_per_minute", "Judgments made in a project in the last 60 seconds.", labels=["project"]
    )
    for project in figures.projects:
        queue.add_metric([project.slug], project.queue_depth)
        rate.add_metric([project.slug], project.judgments_last_minute)
    omitted = GaugeMetricFamily(
        "prefstudio_metrics_projects_omitted",
        "Projects beyond PREFSTUDIO_METRICS_MAX_PROJECTS (the newest are shown) that have no series of their own.",
        value=figures.omitted,
    )
    jobs = GaugeMetricFamily("prefstudio_jobs", "Background jobs by kind and state.", labels=["kind", "state"])
    done = GaugeMetricFamily(
        "prefstudio_job_progress_done", "Units done by the running jobs of a kind, summed.", labels=["kind"]
    )
    total = GaugeMetricFamily(
        "prefstudio_job_progress_total", "Units to do of the running jobs of a kind, summed.", labels=["kind"]
    )
    retries = GaugeMetricFamily(
        "prefstudio_job_retries",
        "Model-server requests sent again so far by the running jobs of a kind (as their workers record them).",
        labels=["kind"],
    )
    for kind, job in sorted(figures.jobs.items()):
        jobs.add_metric([kind, "queued"], job.queued)
        jobs.add_metric([kind, "running"], job.running)
        done.add_metric([kind], job.done)
        total.add_metric([kind], job.total)
        retries.add_metric([kind], job.retries)
    return [queue, rate, omitted, jobs, done, total, retries]


class DatabaseCollector(Collector):
    """Reads the figures from the database once per scrape (a collector made for that scrape)."""

    def __init__(self, db: Database, *, max_projects: int) -> None:
        self.db = db
        self.max_projects = max_projects

    def collect(self) -> Iterator[Metric]:
        with self.db.session(write=False) as session:
            figures = read_figures(session, max_projects=self.max_projects)
        yield from metric_families(figures)
