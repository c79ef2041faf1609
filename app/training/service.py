"""Training runs: recorded, appended to and closed as the training worker reports; read by the pages."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.export.deps import ExportAccess
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import Project, RegisteredModel, Snapshot, TrainingRun, utcnow
from app.registry.service import register_checkpoint
from app.training.schemas import RegisteredRef, RunCreate, RunOut, RunUpdate
from app.webhooks import events as webhook_events

# A run logging every step for a long time would grow its row without bound; past this, report less often.
MAX_ENTRIES_PER_RUN = 20_000
# Metrics the pages show, in this order, under these names.
HEADLINE = (
    ("loss", "loss"),
    ("rewards/chosen", "rewards/chosen"),
    ("rewards/rejected", "rewards/rejected"),
    ("rewards/accuracies", "reward accuracy"),
    ("rewards/margins", "margins"),
    ("eval_rewards/accuracies", "held-out reward accuracy"),
)
HELD_OUT_ACCURACY = "eval_rewards/accuracies"


def create_run(session: Session, *, access: ExportAccess, data: RunCreate) -> TrainingRun:
    """Record a run on a ready snapshot of a project the caller may export (state "running")."""
    snapshot = session.get(Snapshot, data.snapshot_id)
    project = session.get(Project, snapshot.project_id) if snapshot is not None else None
    access.check(project)  # a token of another project: 403, whether or not the snapshot exists
    if snapshot is None or project is None:
        raise NotFound("No such snapshot")
    if snapshot.state != "ready":
        raise Conflict(f"Snapshot {snapshot.id} is {snapshot.state}, not ready")
    params: dict[str, Any] = data.params.model_dump()
    params["effective_batch"] = data.params.effective_batch
    if data.environment:
        params["environment"] = dict(data.environment)
    now = utcnow()
    run = TrainingRun(
        project_id=project.id,
        snapshot_id=snapshot.id,
        token_id=access.token.id if access.token is not None else None,
        state="running",
        base_model=data.base_model,
        output_dir=data.output_dir,
        host=data.host,
        params=params,
        metrics=[],
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    return run


def _run_for_update(session: Session, *, access: ExportAccess, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id, with_for_update=True)  # appends from two requests must not interleave
    project = session.get(Project, run.project_id) if run is not None else None
    access.check(project)
    if run is None:
        raise NotFound("No such training run")
    return run


def update_run(session: Session, *, access: ExportAccess, run_id: int, data: RunUpdate) -> TrainingRun:
    """Append log entries (an entry already recorded is skipped, so a retried report is harmless) and move the
    state on: running → done or failed, once; a finished run takes no more reports. A run finishing "done" with
    its ``model`` registers that checkpoint in the project's model registry, its parent being the base model."""
    run = _run_for_update(session, access=access, run_id=run_id)
    if run.state != "running":
        raise Conflict(f"Training run {run.id} is already {run.state}")
    if data.metrics:
        known = {_entry_key(e) for e in run.metrics}
        fresh: list[dict[str, Any]] = []
        for entry in data.metrics:
            key = _entry_key(entry)
            if key not in known:
                known.add(key)
                fresh.append(dict(entry))
        if len(run.metrics) + len(fresh) > MAX_ENTRIES_PER_RUN:
            raise Invalid(f"A run keeps at most {MAX_ENTRIES_PER_RUN} log entries; log less often")
        run.metrics = [*run.metrics, *fresh]  # a new list: JSON columns do not track in-place changes
    now = utcnow()
    run.updated_at = now
    if data.state is not None and data.state != "running":
        run.state = data.state
        run.finished_at = now
        run.error = data.error if data.state == "failed" else None
    session.flush()
    if data.state == "done" and data.model is not None:
        project = session.get(Project, run.project_id)
        if project is None:  # deleted while the run was reporting
            raise NotFound("The run's project is gone")
        register_checkpoint(
            session,
            project,
            name=data.model.name,
            uri=data.model.uri,
            weights_sha256=data.model.weights_sha256,
            training_run=run,
            params=dict(run.params),
            metrics=final_metrics(run),
            parent_uri=run.base_model,
            parent_weights_sha256=data.model.parent_weights_sha256,
        )
        session.flush()
    webhook_events.training_run_finished(session, run=run, metrics=final_metrics(run))  # done / failed only
    return run


def checkpoints_of(session: Session, run_ids: list[int]) -> dict[int, RegisteredModel]:
    """The model registered from each of these runs (the first, should a run have several)."""
    if not run_ids:
        return {}
    found: dict[int, RegisteredModel] = {}
    query = select(RegisteredModel).where(RegisteredModel.training_run_id.in_(run_ids)).order_by(RegisteredModel.id)
    for model in session.scalars(query):
        assert model.training_run_id is not None
        found.setdefault(model.training_run_id, model)
    return found


def _entry_key(entry: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in entry.items()))


def list_runs(session: Session, *, project: Project, snapshot_id: int | None = None) -> list[TrainingRun]:
    """The project's runs, newest first."""
    query = select(TrainingRun).where(TrainingRun.project_id == project.id)
    if snapshot_id is not None:
        query = query.where(TrainingRun.snapshot_id == snapshot_id)
    return list(session.scalars(query.order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())))


def get_run(session: Session, *, access: ExportAccess, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    access.check(session.get(Project, run.project_id) if run is not None else None)
    if run is None:
        raise NotFound("No such training run")
    return run


def project_slug(session: Session, project_id: int) -> str:
    """The slug a run's answer names its project by ("" once the project is gone)."""
    project = session.get(Project, project_id)
    return project.slug if project is not None else ""


def final_metrics(run: TrainingRun) -> dict[str, Any]:
    """The latest value of each metric (the trainer's closing summary included), with the step it was seen at."""
    final: dict[str, Any] = {}
    for entry in run.metrics:
        for key, value in entry.items():
            if value is not None:
                final[key] = value
    return final


def run_out(run: TrainingRun, *, project_slug: str, model: RegisteredModel | None = None) -> RunOut:
    return RunOut(
        id=run.id,
        project=project_slug,
        snapshot_id=run.snapshot_id,
        state=run.state,
        base_model=run.base_model,
        output_dir=run.output_dir,
        host=run.host,
        params=run.params,
        metrics=run.metrics,
        final=final_metrics(run),
        error=run.error,
        model=RegisteredRef.model_validate(model) if model is not None else None,
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


# --- the page ------------------------------------------------------------------------------------------------


@dataclass
class Chart:
    """A line chart drawn by the template as one SVG polyline; coordinates already in the viewBox."""

    points: str
    width: int
    height: int
    x_min: int
    x_max: int
    y_min: float
    y_max: float
    last: float


@dataclass
class RunView:
    run: TrainingRun
    headline: list[tuple[str, Any]]
    chart: Chart | None
    steps: int | None


@dataclass
class SnapshotRuns:
    snapshot: Snapshot
    runs: list[RunView] = field(default_factory=list)


def shown_number(value: Any) -> float | None:
    """A stored metric as the page can show it: a finite float, or None (text, a flag, or a number stored before
    they were checked that no float holds)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def loss_chart(metrics: list[dict[str, Any]], *, width: int = 240, height: int = 80, pad: int = 4) -> Chart | None:
    """Loss over steps, scaled into a ``width × height`` box; None with fewer than two points."""
    points = [
        (e["step"], loss)
        for e in metrics
        if type(e.get("step")) is int and (loss := shown_number(e.get("loss"))) is not None
    ]
    if len(points) < 2:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    x_span = (x_max - x_min) or 1
    # Halved first: the span of two finite floats may itself overflow (1e308 - -1e308).
    y_span = (y_max / 2 - y_min / 2) or 1.0
    coords = " ".join(
        f"{pad + (x - x_min) / x_span * (width - 2 * pad):.1f},"
        f"{pad + (y_max / 2 - y / 2) / y_span * (height - 2 * pad):.1f}"
        for x, y in points
    )
    return Chart(coords, width, height, x_min, x_max, y_min, y_max, ys[-1])


def runs_by_snapshot(session: Session, *, project: Project) -> list[SnapshotRuns]:
    """The project's snapshots, newest first, each with its runs (newest first); a snapshot that is not ready
    only when something was trained on it."""
    runs = list_runs(session, project=project)
    snapshots = {
        s.id: s
        for s in session.scalars(
            select(Snapshot)
            .where(Snapshot.project_id == project.id)
            .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
        )
    }
    groups: dict[int, SnapshotRuns] = {sid: SnapshotRuns(snapshot) for sid, snapshot in snapshots.items()}
    for run in runs:
        final = final_metrics(run)
        step = final.get("step")
        groups[run.snapshot_id].runs.append(
            RunView(
                run=run,
                headline=[(label, shown_number(final.get(key))) for key, label in HEADLINE],
                chart=loss_chart(run.metrics),
                steps=step if type(step) is int else None,
            )
        )
    return [g for g in groups.values() if g.runs or g.snapshot.state == "ready"]


def any_running(groups: list[SnapshotRuns]) -> bool:
    return any(v.run.state == "running" for g in groups for v in g.runs)
