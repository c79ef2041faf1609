"""Generation rules: project settings, which items a job covers, storing an item's candidates atomically."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from app.generation import diagnosis, egress, rounds, store
from app.generation.client import Sample
from app.generation.schemas import MASKED_KEY, GenerationSettings, HealthOut, JobIn
from app.i18n import gettext
from app.jobs import service as jobs
from app.kit.errors import Conflict, Invalid
from app.models import Assignment, Candidate, Item, Job, Judgment, Project, utcnow

KIND = "generate"


def settings_of(project: Project) -> GenerationSettings:
    try:
        return GenerationSettings.model_validate(project.generation or {})
    except ValidationError as exc:
        raise Invalid(f"The project's generation settings are invalid: {exc.errors()[0]['msg']}") from exc


def job_settings(project: Project, job: Job) -> GenerationSettings:
    """The settings a generation job samples with: the project's, with what the job itself fixed when it was queued
    (``params["settings"]``: a round from a registered model) laid over them, so a resumed job samples as it began."""
    override = job.params.get("settings")
    if not override:
        return settings_of(project)
    return GenerationSettings.model_validate({**(project.generation or {}), **override})


def update_settings(
    session: Session, *, project: Project, data: dict[str, Any], allow_private: bool
) -> GenerationSettings:
    """Replace the generation settings. An omitted or masked API key keeps the stored one, but only for the
    servers it was entered for; ``null`` or ``""`` removes it."""
    try:
        current = settings_of(project)
    except Invalid:  # stored before today's checks: the admin replaces them, the old key is not carried over
        current = GenerationSettings()
    data = {k: v for k, v in data.items() if k != "api_key_origins"}  # the server decides where a key may go
    keep_key = data.get("api_key", MASKED_KEY) == MASKED_KEY
    data["api_key"] = current.api_key if keep_key else (data["api_key"] or None)
    try:
        settings = GenerationSettings.model_validate(data)
    except ValidationError as exc:
        raise Invalid([{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from exc
    refused = [
        {"loc": ["base_urls"], "msg": f"{url}: {problem}"}
        for url in settings.servers()
        if (problem := egress.host_problem(urlsplit(url).hostname or "", allow_private=allow_private))
    ]
    if refused:
        raise Invalid(refused)
    if settings.api_key and keep_key:
        saved_for = set(current.api_key_origins or [])
        others = [o for o in settings.origins() if o not in saved_for]
        if others:
            raise Invalid(
                f"The API key was entered for {', '.join(sorted(saved_for)) or 'no server'}: enter it again to "
                f"send it to {', '.join(others)}, or clear it"
            )
        settings.api_key_origins = [o for o in settings.origins() if o in saved_for]
    elif settings.api_key:
        settings.api_key_origins = settings.origins()
    project.generation = settings.model_dump()
    session.flush()
    return settings


MAX_MODEL_IDS = 50
MAX_MODELS_ANSWER = 1 << 20  # bytes of a /v1/models answer read at most


def _models_listed(answer: Any) -> tuple[list[str], int | None]:
    """The model ids and the largest context length of a /v1/models answer; ValueError if it is not one."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise ValueError("unexpected answer: no list of models under 'data'")
    entries = [m for m in data if isinstance(m, dict)]
    # Only what an admin needs to pick a model, bounded: names of at most 200 characters, never other fields.
    ids = [m["id"][:200] for m in entries if isinstance(m.get("id"), str) and m["id"]][:MAX_MODEL_IDS]
    lengths = [
        m["max_model_len"]
        for m in entries
        if type(m.get("max_model_len")) is int and 0 < m["max_model_len"] < 2**31  # noqa: E721 - not bool
    ]
    return ids, max(lengths, default=None)


def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise ValueError(f"unexpected answer: longer than {limit} bytes")
    return body


def health(settings: GenerationSettings, *, allow_private: bool, timeout: float = 3.0) -> list[HealthOut]:
    """Ask every configured server for /v1/models: up or not, its models, their context length."""
    out = []
    with egress.guarded_client(allow_private=allow_private, timeout=timeout) as client:
        for url in settings.servers():
            key = settings.key_for(url)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            started = time.perf_counter()
            try:
                with client.stream("GET", url + "/v1/models", headers=headers) as response:
                    response.raise_for_status()
                    ids, max_len = _models_listed(json.loads(_read_bounded(response, MAX_MODELS_ANSWER)))
                out.append(
                    HealthOut(
                        base_url=url,
                        ok=True,
                        models=ids,
                        max_model_len=max_len,
                        latency_ms=(time.perf_counter() - started) * 1000,
                        problem=_model_problem(settings, url, ids),
                    )
                )
            except (httpx.HTTPError, ValueError, RecursionError, egress.AddressRefused) as exc:
                out.append(
                    HealthOut(
                        base_url=url,
                        ok=False,
                        error=f"{type(exc).__name__}: {exc}"[:300],
                        problem=diagnosis.explain_exception(exc, url=url, model=settings.model),
                    )
                )
    return out


def _model_problem(settings: GenerationSettings, url: str, served: list[str]) -> str | None:
    if settings.strategy == "per_model":
        wanted = {m.model for m in settings.models if m.base_url in (None, url)}
    else:
        wanted = {settings.model} if settings.model else set()
    missing = sorted(m for m in wanted if m not in served)
    return diagnosis.model_missing(url, ", ".join(missing), served) if missing and served else None


def check_reachable(settings: GenerationSettings, *, allow_private: bool) -> None:
    """Refuse a start (409) when no configured server answers: the job would only retry and fail."""
    found = health(settings, allow_private=allow_private)
    if found and not any(h.ok for h in found):
        raise Conflict(
            gettext("No model server answers, so a job would produce nothing:")
            + " "
            + " ".join(h.problem or h.error or h.base_url for h in found)
        )


def _all_bad_items(session: Session, project: Project) -> dict[int, int]:
    rows = session.execute(
        select(Item.id, Item.round)
        .join(Judgment, (Judgment.item_id == Item.id) & (Judgment.round == Item.round))
        .where(Item.project_id == project.id, Judgment.flag_all_bad.is_(True))
        .distinct()
    )
    return dict(rows.tuples().all())


def request_settings(
    session: Session, *, project: Project, request: JobIn
) -> tuple[GenerationSettings, rounds.Round | None]:
    """The settings a job request samples with: the project's, or for a round from a registered model, the
    project's with the round's override laid over them (as ``job_settings`` reads them back)."""
    base = settings_of(project)
    found = rounds.round_of(session, project=project, request=request, base=base)
    if found is None:
        return base, None
    return GenerationSettings.model_validate({**(project.generation or {}), **found.override}), found


def _selected(session: Session, *, project: Project, request: JobIn, params: dict[str, Any]) -> int:
    """Fill ``params`` with the items a job covers (``pending``, ``regenerate``: id → round); return their count."""
    if request.selection == "missing":
        return session.scalar(select(func.count()).where(Item.project_id == project.id, Item.status == "pending")) or 0
    if request.selection == "ids":
        if not request.item_ids:
            raise Invalid("Choose at least one item")
        rows = session.execute(
            select(Item.id, Item.round, Item.status).where(Item.project_id == project.id, Item.id.in_(request.item_ids))
        ).all()
        unknown = set(request.item_ids) - {r[0] for r in rows}
        if unknown:
            raise Invalid(f"Items not in this project: {sorted(unknown)[:10]}")
        # A pending item gets its first candidates; one with candidates gets a new round.
        params["pending"] = sorted(r[0] for r in rows if r[2] == "pending")
        targets = {r[0]: r[1] for r in rows if r[2] != "pending"}
    elif request.selection == "all_ready":
        # Gold items keep their candidates: their expected judgments name candidate positions.
        query = select(Item.id, Item.round).where(
            Item.project_id == project.id, Item.status == "ready", Item.is_gold.is_(False)
        )
        targets = dict(session.execute(query).tuples().all())
        params["pending"] = []
    else:
        targets = _all_bad_items(session, project)
        params["pending"] = []
    params["regenerate"] = {str(item_id): round_ for item_id, round_ in sorted(targets.items())}
    return len(params["pending"]) + len(targets)


def start_job(session: Session, *, project: Project, request: JobIn, user_id: int | None) -> Job:
    """Queue a generation job for the items without candidates, chosen items, items judged "all bad" or every
    item with candidates; from the project's settings, or as a round from a registered model (``model_id``)."""
    settings, round_ = request_settings(session, project=project, request=request)
    problems = settings.problems(project.k)
    if problems:
        raise Invalid("Generation is not configured: " + "; ".join(problems))
    busy = session.scalar(
        select(Job.id).where(Job.project_id == project.id, Job.kind == KIND, Job.state.in_(("queued", "running")))
    )
    if busy is not None:
        raise Conflict(f"Generation job #{busy} is still running for this project; cancel it or wait")
    params: dict[str, Any] = {"selection": request.selection}
    total = _selected(session, project=project, request=request, params=params)
    if total == 0:
        raise Invalid("No items to generate for")
    if round_ is not None:
        params["settings"] = round_.override
        params["models"] = round_.models
    return jobs.enqueue(session, kind=KIND, project_id=project.id, params=params, total=total, created_by_id=user_id)


def store_candidates(
    session: Session, *, item_id: int, from_round: int, regenerate: bool, samples: list[Sample]
) -> bool:
    """Store one item's candidates, all or none; False when the item was already done (by another worker).

    First generation: the item goes pending → ready with round 0. Regeneration: the item moves to a new
    round (old candidates and judgments stay for the record), its queue counters restart, and open
    leases on the old round end.
    """
    now = utcnow()
    item_filter = (Item.id == item_id) & (Item.round == from_round)
    if regenerate:
        # The old round's leases end first: a submit holds its lease's lock and then updates the item, so taking
        # them in that order waits for the submit (which then counts on the old round) instead of deadlocking.
        session.execute(
            update(Assignment)
            .where(Assignment.item_id == item_id, Assignment.round == from_round, Assignment.status == "leased")
            .values(status="expired")
        )
        moved = session.execute(
            update(Item)
            .where(item_filter, Item.status == "ready")
            .values(round=Item.round + 1, claims=0, judgment_count=0)
        )
        new_round = from_round + 1
    else:
        moved = session.execute(update(Item).where(item_filter, Item.status == "pending").values(status="ready"))
        new_round = from_round
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(insert(Candidate), store.candidate_rows(item_id, new_round, samples, now))
    session.flush()
    return True
