"""On-policy rounds: a generation job that samples from a registered model ("new round from model X"), optionally
mixing in the project's current policy (one candidate from it, the others from X).

A job of a round stores what it changes in the project's settings in ``job.params["settings"]`` (read back by
``service.job_settings``), so a resumed job samples from the same model, and the models it used in
``job.params["models"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.generation.schemas import GenerationSettings, JobIn, ModelChoice
from app.kit.errors import Invalid
from app.models import Candidate, Item, Project, RegisteredModel


@dataclass
class Round:
    """What a round's job lays over the project's settings, and the models it samples from."""

    override: dict[str, Any]
    models: list[dict[str, Any]]


def endpoint_model(session: Session, *, project: Project, model_id: int) -> RegisteredModel:
    """The registered model of the project, with a serving endpoint; 422 otherwise."""
    model = session.scalar(
        select(RegisteredModel).where(RegisteredModel.project_id == project.id, RegisteredModel.id == model_id)
    )
    if model is None:
        raise Invalid([{"loc": ["model_id"], "msg": f"no registered model {model_id} in this project"}])
    if not model.base_url or not model.served_name:
        raise Invalid(
            [
                {
                    "loc": ["model_id"],
                    "msg": f"model {model.name!r} has no serving endpoint: give it a base URL and a served name "
                    "in the model registry first",
                }
            ]
        )
    return model


def model_id_of(session: Session, *, project: Project, reference: str) -> int:
    """The id of the project's registered model named ``reference`` (or with that id); 422 if there is none."""
    query = select(RegisteredModel.id).where(RegisteredModel.project_id == project.id)
    found = session.scalar(query.where(RegisteredModel.name == reference))
    if found is None and reference.isdigit():
        found = session.scalar(query.where(RegisteredModel.id == int(reference)))
    if found is None:
        raise Invalid(f"No registered model {reference!r} in this project")
    return found


def endpoint_models(session: Session, *, project: Project) -> list[RegisteredModel]:
    """The project's registered models that a round can sample from (with a base URL and a served name)."""
    query = select(RegisteredModel).where(
        RegisteredModel.project_id == project.id,
        RegisteredModel.base_url.is_not(None),
        RegisteredModel.served_name.is_not(None),
    )
    return [m for m in session.scalars(query.order_by(RegisteredModel.id)) if m.base_url and m.served_name]


def current_policy_id(session: Session, *, project: Project) -> int | None:
    """The registered model that wrote most candidates of the project's latest round (the highest current round
    of its items), or None when no registered model wrote any there."""
    latest = session.scalar(select(func.max(Item.round)).where(Item.project_id == project.id, Item.status == "ready"))
    if latest is None:
        return None
    counts = session.execute(
        select(Candidate.model_id, func.count())
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == project.id, Item.round == latest, Candidate.model_id.is_not(None))
        .group_by(Candidate.model_id)
        .order_by(func.count().desc(), Candidate.model_id)
        .limit(1)
    ).first()
    return int(counts[0]) if counts else None


def _choice_of(model: RegisteredModel) -> ModelChoice:
    return ModelChoice(
        model=model.served_name or "",
        base_url=model.base_url,
        model_id=model.id,
        weights_sha256=model.weights_sha256,
    )


def _described(choice: ModelChoice, role: str, name: str | None) -> dict[str, Any]:
    return {"role": role, "name": name, **choice.model_dump()}


def _previous_policy(session: Session, *, project: Project, base: GenerationSettings) -> tuple[ModelChoice, str | None]:
    """The project's current policy as one model choice (and its registered name): the registered model of most
    candidates of the latest round, else the generation settings' model on their first server."""
    policy_id = current_policy_id(session, project=project)
    if policy_id is not None:
        model = session.get(RegisteredModel, policy_id)
        if model is not None and model.base_url and model.served_name:
            return _choice_of(model), model.name
    if not base.model or not base.base_urls:
        raise Invalid(
            [
                {
                    "loc": ["mix_previous"],
                    "msg": "no previous policy to mix in: no registered model with an endpoint wrote the latest "
                    "round, and the generation settings name no model and server",
                }
            ]
        )
    return ModelChoice(model=base.model, base_url=base.base_urls[0]), None


def round_of(session: Session, *, project: Project, request: JobIn, base: GenerationSettings) -> Round | None:
    """The round a job request asks for (None: a plain job on the project's settings)."""
    if request.model_id is None:
        if request.mix_previous:
            raise Invalid([{"loc": ["mix_previous"], "msg": "mixing in the previous policy needs a model_id"}])
        return None
    model = endpoint_model(session, project=project, model_id=request.model_id)
    choice = _choice_of(model)
    override: dict[str, Any] = {
        "base_urls": [model.base_url],
        "model": model.served_name,
        "model_id": model.id,
        "weights_sha256": model.weights_sha256,
    }
    models = [_described(choice, "round", model.name)]
    if request.mix_previous:
        previous, name = _previous_policy(session, project=project, base=base)
        if previous.model_id == model.id:
            raise Invalid([{"loc": ["mix_previous"], "msg": f"model {model.name!r} is already the current policy"}])
        # One candidate from the previous policy, the others from the new model (each its own seed).
        override |= {
            "strategy": "per_model",
            "models": [previous.model_dump()] + [choice.model_dump()] * (project.k - 1),
        }
        models.append(_described(previous, "previous", name))
    elif base.strategy == "per_model":  # one model now: k samples of it, as the default strategy takes them
        override |= {"strategy": "n_seeds", "models": []}
    return Round(override=override, models=models)
