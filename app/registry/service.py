"""Registry rules: adding a model (by hand, by the API, or as a training run's checkpoint), its lineage, binding it
to a serving endpoint, deleting it, and asking its endpoint whether it is up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.generation import egress
from app.generation import service as generation
from app.generation.schemas import GenerationSettings
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import Project, RegisteredModel, Snapshot, TrainingRun
from app.registry import repository
from app.registry.schemas import ModelHealthOut, ModelIn, ModelOut, ModelUpdate

MAX_NAME = 200


def _endpoint_problem(base_url: str | None, *, allow_private: bool) -> None:
    """Refuse an endpoint the server may not call (the generation settings' egress rules)."""
    if base_url is None:
        return
    problem = egress.host_problem(urlsplit(base_url).hostname or "", allow_private=allow_private)
    if problem:
        raise Invalid([{"loc": ["base_url"], "msg": f"{base_url}: {problem}"}])


def _store(session: Session, model: RegisteredModel) -> RegisteredModel:
    """Insert ``model``; a name taken meanwhile by a concurrent request is a 409, not a 500."""
    try:
        with session.begin_nested():
            session.add(model)
    except IntegrityError as exc:
        raise Conflict(f"A model named {model.name!r} is already registered in this project") from exc
    return model


def _free_name(session: Session, project: Project, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``… — the first not taken in the project."""
    taken = repository.names_of(session, project)
    if name not in taken:
        return name
    n = 2
    while (candidate := f"{name[: MAX_NAME - 1 - len(str(n))]}-{n}") in taken:
        n += 1
    return candidate


def _snapshot_of(session: Session, project: Project, snapshot_id: int | None) -> Snapshot | None:
    if snapshot_id is None:
        return None
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.project_id != project.id:
        raise Invalid([{"loc": ["snapshot_id"], "msg": f"no snapshot {snapshot_id} in this project"}])
    return snapshot


def _run_of(session: Session, project: Project, run_id: int | None) -> TrainingRun | None:
    if run_id is None:
        return None
    run = session.get(TrainingRun, run_id)
    if run is None or run.project_id != project.id:
        raise Invalid([{"loc": ["training_run_id"], "msg": f"no training run {run_id} in this project"}])
    return run


def add_model(
    session: Session, *, project: Project, data: ModelIn, user_id: int | None, allow_private: bool
) -> RegisteredModel:
    """Register a model; 409 if the name is taken. Its weights digest is the one given: the app never reads a path it
    is sent (an export token could otherwise make it walk and hash any directory of its machine); the command line
    and the training worker hash the weights where they are."""
    _endpoint_problem(data.base_url, allow_private=allow_private)
    if repository.model_by_name(session, project, data.name) is not None:
        raise Conflict(f"A model named {data.name!r} is already registered in this project")
    if data.parent_id is not None and repository.model_by_id(session, project, data.parent_id) is None:
        raise Invalid([{"loc": ["parent_id"], "msg": f"no model {data.parent_id} in this project"}])
    run = _run_of(session, project, data.training_run_id)
    snapshot = _snapshot_of(session, project, data.snapshot_id or (run.snapshot_id if run else None))
    model = RegisteredModel(
        project_id=project.id,
        name=data.name,
        kind=data.kind,
        uri=data.uri,
        parent_id=data.parent_id,
        snapshot_id=snapshot.id if snapshot else None,
        snapshot_sha256=snapshot.sha256 if snapshot else None,
        training_run_id=run.id if run else None,
        params=data.params,
        metrics=data.metrics,
        weights_sha256=data.weights_sha256,
        base_url=data.base_url,
        served_name=data.served_name,
        created_by_id=user_id,
    )
    return _store(session, model)


def register_checkpoint(
    session: Session,
    project: Project,
    *,
    name: str,
    uri: str,
    weights_sha256: str | None,
    training_run: TrainingRun | int | None,
    params: dict[str, Any],
    metrics: dict[str, Any],
    parent_uri: str | None,
    parent_weights_sha256: str | None = None,
) -> RegisteredModel:
    """Register what a finished training run wrote. Its parent is the project's model at ``parent_uri`` (the run's
    base model), registered as kind "sft" with ``parent_weights_sha256`` (computed by the trainer, where the weights
    are) if it is not yet; a taken ``name`` gets a suffix (-2, -3, …)."""
    run = session.get(TrainingRun, training_run) if isinstance(training_run, int) else training_run
    if run is not None and run.project_id != project.id:
        raise Invalid(f"Training run {run.id} belongs to another project")
    parent = None
    if parent_uri:
        parent = repository.model_by_uri(session, project, parent_uri)
        if parent is None:
            base_name = _free_name(session, project, parent_uri.rstrip("/").rsplit("/", 1)[-1][:MAX_NAME] or "sft")
            parent = RegisteredModel(
                project_id=project.id,
                name=base_name,
                kind="sft",
                uri=parent_uri,  # not hashed here: see add_model
                weights_sha256=parent_weights_sha256,
            )
            _store(session, parent)
        elif parent.weights_sha256 is None and parent_weights_sha256:
            parent.weights_sha256 = parent_weights_sha256
    snapshot = session.get(Snapshot, run.snapshot_id) if run is not None else None
    model = RegisteredModel(
        project_id=project.id,
        name=_free_name(session, project, name.strip()[:MAX_NAME] or "checkpoint"),
        kind="checkpoint",
        uri=uri,
        parent_id=parent.id if parent else None,
        snapshot_id=snapshot.id if snapshot else None,
        snapshot_sha256=snapshot.sha256 if snapshot else None,
        training_run_id=run.id if run else None,
        params=params,
        metrics=metrics,
        weights_sha256=weights_sha256,
    )
    return _store(session, model)


def get_model(session: Session, *, project: Project, model_id: int) -> RegisteredModel:
    model = repository.model_by_id(session, project, model_id)
    if model is None:
        raise NotFound("No such model")
    return model


def update_model(
    session: Session, *, project: Project, model_id: int, data: ModelUpdate, allow_private: bool
) -> RegisteredModel:
    """Rename a model, give it its weights digest, or bind it to (or unbind it from) a serving endpoint."""
    model = get_model(session, project=project, model_id=model_id)
    sent = data.model_fields_set
    if data.name is not None and data.name != model.name:
        if repository.model_by_name(session, project, data.name) is not None:
            raise Conflict(f"A model named {data.name!r} is already registered in this project")
        model.name = data.name
    if data.weights_sha256 is not None:
        model.weights_sha256 = data.weights_sha256
    if sent & {"base_url", "served_name"}:
        _endpoint_problem(data.base_url, allow_private=allow_private)
        model.base_url, model.served_name = data.base_url, data.served_name
    session.flush()
    return model


def delete_model(session: Session, *, project: Project, model_id: int) -> None:
    """Delete a model; 409 while an arena of the project lists it. Candidates keep their weights hash."""
    model = get_model(session, project=project, model_id=model_id)
    arenas = repository.arenas_listing(session, project, model.id)
    if arenas:
        names = ", ".join(a.slug for a in arenas)
        raise Conflict(f"The model is part of the arena(s) {names}: remove it there first")
    session.delete(model)
    session.flush()


@dataclass
class Lineage:
    """Each model's parent's name and children's ids, from one list of the project's models."""

    names: dict[int, str] = field(default_factory=dict)
    children: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, models: list[RegisteredModel]) -> Lineage:
        lineage = cls(names={m.id: m.name for m in models})
        for m in models:
            if m.parent_id is not None:
                lineage.children.setdefault(m.parent_id, []).append(m.id)
        return lineage


def model_out(model: RegisteredModel, *, project: Project, lineage: Lineage) -> ModelOut:
    return ModelOut.model_validate(
        {
            **{c: getattr(model, c) for c in ModelOut.model_fields if hasattr(model, c) and c != "project"},
            "project": project.slug,
            "parent_name": lineage.names.get(model.parent_id) if model.parent_id is not None else None,
            "children": lineage.children.get(model.id, []),
        }
    )


def list_models(session: Session, *, project: Project) -> list[ModelOut]:
    """The project's models with their lineage, oldest first."""
    models = repository.models_of(session, project)
    lineage = Lineage.of(models)
    return [model_out(m, project=project, lineage=lineage) for m in models]


def one_model(session: Session, *, project: Project, model_id: int) -> ModelOut:
    model = get_model(session, project=project, model_id=model_id)
    return model_out(model, project=project, lineage=Lineage.of(repository.models_of(session, project)))


def health(model: RegisteredModel, *, allow_private: bool, timeout: float = 3.0) -> ModelHealthOut:
    """Ask the model's endpoint for /v1/models, as the generation page asks its servers."""
    if model.base_url is None or model.served_name is None:
        return ModelHealthOut(model_id=model.id, bound=False)
    settings = GenerationSettings(base_urls=[model.base_url], model=model.served_name)
    found = generation.health(settings, allow_private=allow_private, timeout=timeout)
    return ModelHealthOut(model_id=model.id, bound=True, servers=found)


@dataclass
class Row:
    """A model as the page lists it: in lineage order (each parent before its children), indented by depth."""

    model: ModelOut
    depth: int


def lineage_rows(models: list[ModelOut]) -> list[Row]:
    """Depth-first from the roots (models without a parent in the list), children oldest first."""
    by_id = {m.id: m for m in models}
    rows: list[Row] = []
    seen: set[int] = set()

    def visit(model: ModelOut, depth: int) -> None:
        if model.id in seen:  # a cycle (a parent renamed into a loop by hand) is listed once
            return
        seen.add(model.id)
        rows.append(Row(model=model, depth=depth))
        for child in model.children:
            if child in by_id:
                visit(by_id[child], depth + 1)

    for m in models:
        if m.parent_id is None or m.parent_id not in by_id:
            visit(m, 0)
    for m in models:  # anything left sits in a cycle
        visit(m, 0)
    return rows


def reward_accuracy(metrics: dict[str, Any]) -> float | None:
    """The run's reward accuracy from a model's metrics (the eval figure if there is one), or None."""
    for key in ("eval_rewards/accuracies", "rewards/accuracies", "reward_accuracy"):
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
