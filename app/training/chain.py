"""The chain of a project's models: SFT → snapshot r1 → DPO r1 → snapshot r2 → DPO r2 …, each checkpoint with its
parent, the snapshot it was trained on and its run's held-out reward accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Project, RegisteredModel, Snapshot, TrainingRun
from app.training.service import HELD_OUT_ACCURACY, final_metrics, shown_number


@dataclass
class ChainLink:
    """One registered model in the chain, at ``depth`` hops from its root (the SFT model, usually)."""

    model: RegisteredModel
    depth: int
    parent: RegisteredModel | None
    snapshot: Snapshot | None
    run: TrainingRun | None
    held_out_accuracy: float | None  # the run's last eval_rewards/accuracies; None when it had no test rows
    train_accuracy: float | None  # its last rewards/accuracies on the training pairs, for comparison

    @property
    def rounds(self) -> list[int]:
        return list(self.snapshot.rounds or []) if self.snapshot is not None else []


def _accuracies(model: RegisteredModel, run: TrainingRun | None) -> tuple[float | None, float | None]:
    """Held-out and training reward accuracy: from the run's log when it is still there, else from the metrics
    the model was registered with."""
    final = final_metrics(run) if run is not None else dict(model.metrics or {})
    return shown_number(final.get(HELD_OUT_ACCURACY)), shown_number(final.get("rewards/accuracies"))


def model_chain(session: Session, *, project: Project) -> list[ChainLink]:
    """The project's models in lineage order: each root (oldest first), then its descendants depth first, so a
    round's checkpoint follows the model it was trained from."""
    models = list(
        session.scalars(
            select(RegisteredModel)
            .where(RegisteredModel.project_id == project.id)
            .order_by(RegisteredModel.created_at, RegisteredModel.id)
        )
    )
    by_id = {m.id: m for m in models}
    snapshot_ids = {m.snapshot_id for m in models if m.snapshot_id is not None}
    run_ids = {m.training_run_id for m in models if m.training_run_id is not None}
    snapshots = {s.id: s for s in session.scalars(select(Snapshot).where(Snapshot.id.in_(snapshot_ids)))}
    runs = {r.id: r for r in session.scalars(select(TrainingRun).where(TrainingRun.id.in_(run_ids)))}
    children: dict[int | None, list[RegisteredModel]] = {}
    for m in models:
        parent_id = m.parent_id if m.parent_id in by_id else None
        children.setdefault(parent_id, []).append(m)

    links: list[ChainLink] = []
    seen: set[int] = set()

    def visit(model: RegisteredModel, depth: int) -> None:
        if model.id in seen:  # a cycle edited by hand: show each model once
            return
        seen.add(model.id)
        run = runs.get(model.training_run_id) if model.training_run_id is not None else None
        held_out, train = _accuracies(model, run)
        snapshot = snapshots.get(model.snapshot_id) if model.snapshot_id is not None else None
        parent = by_id.get(model.parent_id) if model.parent_id is not None else None
        links.append(ChainLink(model, depth, parent, snapshot, run, held_out, train))
        for child in children.get(model.id, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    for model in models:  # parents in a cycle have no root: still listed
        visit(model, 0)
    return links
