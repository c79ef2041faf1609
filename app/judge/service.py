"""Judge rules: settings (keys tied to their server), queueing a job, storing an item's suggestions at once."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.generation import egress
from app.generation import service as generation
from app.generation.schemas import MASKED_KEY, GenerationSettings, origin_of
from app.jobs import service as jobs
from app.judge.repository import judge_name, judge_names, primary_suggestions
from app.judge.rubric import rubric_problems
from app.judge.schemas import JudgeHealthOut, JudgeJobIn, JudgeSettings
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import Item, Job, Project, Suggestion

KIND = "judge"


def settings_of(project: Project) -> JudgeSettings:
    try:
        return JudgeSettings.model_validate(project.judge or {})
    except ValidationError as exc:
        raise Invalid(f"The project's judge settings are invalid: {exc.errors()[0]['msg']}") from exc


def update_settings(session: Session, *, project: Project, data: dict[str, Any], allow_private: bool) -> JudgeSettings:
    """Replace the judge settings. A judge's omitted or masked key keeps the stored key of the same judge, only
    while its server stays the same; ``null`` or ``""`` removes it."""
    try:
        stored = {(j.model, j.base_url): j for j in settings_of(project).judges}
    except Invalid:
        stored = {}
    judges = []
    for raw in data.get("judges") or []:
        if not isinstance(raw, dict):
            raise Invalid("Each judge is an object with base_url and model")
        entry = {k: v for k, v in raw.items() if k != "api_key_origin"}  # the server decides where a key may go
        judges.append(entry)
    try:
        settings = JudgeSettings.model_validate({**data, "judges": judges})
    except ValidationError as exc:
        raise Invalid([{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from exc
    problems = rubric_problems(settings.rubric)
    if problems:
        raise Invalid([{"loc": ["rubric"], "msg": problem} for problem in problems])
    for raw, judge in zip(judges, settings.judges, strict=True):
        problem = egress.host_problem(urlsplit(judge.base_url).hostname or "", allow_private=allow_private)
        if problem:
            raise Invalid([{"loc": ["judges", "base_url"], "msg": f"{judge.base_url}: {problem}"}])
        if raw.get("api_key", MASKED_KEY) == MASKED_KEY:
            old = stored.get((judge.model, judge.base_url))
            judge.api_key = old.api_key if old else None
            judge.api_key_origin = old.api_key_origin if old and old.api_key else None
        elif judge.api_key:
            judge.api_key_origin = origin_of(judge.base_url)
    names = [judge_name(j.model, j.base_url) for j in settings.judges]
    if len(set(names)) != len(names):
        raise Invalid("A judge (model and server) is listed twice")
    project.judge = settings.model_dump()
    session.flush()
    return settings


def health(settings: JudgeSettings, *, allow_private: bool) -> list[JudgeHealthOut]:
    """Ask each judge's server for /v1/models, as the generation page does: up or not, and whether it serves the
    judge's model."""
    out = []
    for judge in settings.judges:
        key = judge.key()
        asked = GenerationSettings(
            base_urls=[judge.base_url],
            model=judge.model,
            api_key=key,
            api_key_origins=[origin_of(judge.base_url)] if key else None,
        )
        for found in generation.health(asked, allow_private=allow_private):
            name = judge_name(judge.model, judge.base_url)
            out.append(JudgeHealthOut(**found.model_dump(), judge=name, model=judge.model))
    return out


def start_job(session: Session, *, project: Project, request: JudgeJobIn, user_id: int | None) -> Job:
    """Queue a judge job over the project's ready items (all judges, or the one named); 409 without a judge."""
    settings = settings_of(project)
    names = judge_names(project)
    if not names:
        raise Conflict("No judge is configured for this project")
    if request.judge is not None and request.judge not in names:
        raise Invalid(f"{request.judge!r} is not one of this project's judges")
    busy = session.scalar(
        select(Job.id).where(Job.project_id == project.id, Job.kind == KIND, Job.state.in_(("queued", "running")))
    )
    if busy is not None:
        raise Conflict(f"Judge job #{busy} is still running for this project; cancel it or wait")
    chosen = [request.judge] if request.judge else names
    ready = session.scalar(select(func.count()).where(Item.project_id == project.id, Item.status == "ready")) or 0
    if ready == 0:
        raise Invalid("No items with candidates to judge")
    params = {"judges": chosen, "prompt_version": settings.prompt_version}
    return jobs.enqueue(
        session, kind=KIND, project_id=project.id, params=params, total=ready * len(chosen), created_by_id=user_id
    )


def store_suggestions(
    session: Session, *, project: Project, item_id: int, round_: int, judge: str, rows: list[dict[str, Any]]
) -> bool:
    """Store one item's suggestions from one judge (every dimension) together, replacing that judge's earlier
    ones on the same round (a rerun with a new rubric replaces, never duplicates). False when the item moved
    to another round meanwhile (nothing stored)."""
    current = session.scalar(select(Item.round).where(Item.id == item_id).with_for_update())
    if current != round_:
        return False
    session.execute(
        delete(Suggestion).where(Suggestion.item_id == item_id, Suggestion.round == round_, Suggestion.judge == judge)
    )
    session.add_all(
        Suggestion(project_id=project.id, item_id=item_id, round=round_, judge=judge, **row) for row in rows
    )
    session.flush()
    refresh_judge_confidence(session, project=project, item_id=item_id)
    return True


def refresh_judge_confidence(session: Session, *, project: Project, item_id: int) -> None:
    """``Item.judge_confidence``: the mean over the item's primary suggestions on its current round ("unsure"
    counts 0, a verdict without logprobs 1/k — a uniform guess)."""
    found = primary_suggestions(session, project=project, item_ids=[item_id])
    item = session.get(Item, item_id)
    if item is None:
        return
    values = [
        0.0 if s.kind == "unsure" else (s.confidence if s.confidence is not None else 1 / project.k)
        for s in found.values()
    ]
    item.judge_confidence = sum(values) / len(values) if values else None
    session.flush()


def item_suggestions(session: Session, *, project: Project, item_id: int) -> list[Suggestion]:
    """Every suggestion stored for an item (all rounds, all judges), with provenance."""
    item = session.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise NotFound("No such item")
    query = select(Suggestion).where(Suggestion.item_id == item_id).order_by(Suggestion.round, Suggestion.id)
    return list(session.scalars(query))


def coverage(session: Session, *, project: Project) -> dict[str, Any]:
    """For the judge page: ready items, those with a suggestion on their current round, and the share of those
    suggestions (every judge and dimension) that are "unsure"."""
    ready = Item.project_id == project.id, Item.status == "ready"
    current = select(Suggestion).join(Item, Item.id == Suggestion.item_id).where(*ready, Suggestion.round == Item.round)
    rows = current.subquery()
    total = session.scalar(select(func.count()).select_from(rows)) or 0
    unsure = session.scalar(select(func.count()).select_from(rows).where(rows.c.kind == "unsure")) or 0
    return {
        "ready": session.scalar(select(func.count()).where(*ready)) or 0,
        "judged": session.scalar(select(func.count(func.distinct(rows.c.item_id)))) or 0,
        "suggestions": total,
        "unsure_share": unsure / total if total else None,
    }
