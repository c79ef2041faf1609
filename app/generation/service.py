"""Generation rules: project settings, which items a job covers, storing an item's candidates atomically."""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from app.generation.client import Sample
from app.generation.schemas import GenerationSettings, HealthOut, JobIn
from app.jobs import service as jobs
from app.kit.errors import Conflict, Invalid
from app.models import Assignment, Candidate, Item, Job, Judgment, Project, utcnow

KIND = "generate"


def settings_of(project: Project) -> GenerationSettings:
    try:
        return GenerationSettings.model_validate(project.generation or {})
    except ValidationError as exc:
        raise Invalid(f"The project's generation settings are invalid: {exc.errors()[0]['msg']}") from exc


def update_settings(session: Session, *, project: Project, data: dict[str, Any]) -> GenerationSettings:
    """Replace the generation settings; an omitted or masked API key keeps the stored one."""
    current = settings_of(project)
    if data.get("api_key") in (None, "", "••••"):
        data = {**data, "api_key": current.api_key}
    try:
        settings = GenerationSettings.model_validate(data)
    except ValidationError as exc:
        raise Invalid([{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from exc
    project.generation = settings.model_dump()
    session.flush()
    return settings


def health(settings: GenerationSettings, *, timeout: float = 3.0) -> list[HealthOut]:
    """Ask every configured server for /v1/models: up or not, its models, their context length."""
    urls = list(dict.fromkeys([*settings.base_urls, *(m.base_url for m in settings.models if m.base_url)]))
    out = []
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    with httpx.Client(timeout=timeout) as client:
        for url in urls:
            started = time.perf_counter()
            try:
                response = client.get(url + "/v1/models", headers=headers)
                response.raise_for_status()
                data = response.json().get("data", [])
                out.append(
                    HealthOut(
                        base_url=url,
                        ok=True,
                        models=[m.get("id", "") for m in data],
                        max_model_len=max((m.get("max_model_len") or 0 for m in data), default=None) or None,
                        latency_ms=(time.perf_counter() - started) * 1000,
                    )
                )
            except (httpx.HTTPError, ValueError) as exc:
                out.append(HealthOut(base_url=url, ok=False, error=f"{type(exc).__name__}: {exc}"[:300]))
    return out


def _all_bad_items(session: Session, project: Project) -> dict[int, int]:
    rows = session.execute(
        select(Item.id, Item.round)
        .join(Judgment, (Judgment.item_id == Item.id) & (Judgment.round == Item.round))
        .where(Item.project_id == project.id, Judgment.flag_all_bad.is_(True))
        .distinct()
    )
    return dict(rows.tuples().all())


def start_job(session: Session, *, project: Project, request: JobIn, user_id: int | None) -> Job:
    """Queue a generation job for the items without candidates, chosen items, or items judged "all bad"."""
    problems = settings_of(project).problems(project.k)
    if problems:
        raise Invalid("Generation is not configured: " + "; ".join(problems))
    busy = session.scalar(
        select(Job.id).where(Job.project_id == project.id, Job.kind == KIND, Job.state.in_(("queued", "running")))
    )
    if busy is not None:
        raise Conflict(f"Generation job #{busy} is still running for this project; cancel it or wait")
    params: dict[str, Any] = {"selection": request.selection}
    if request.selection == "missing":
        total = session.scalar(select(func.count()).where(Item.project_id == project.id, Item.status == "pending")) or 0
    else:
        if request.selection == "ids":
            if not request.item_ids:
                raise Invalid("Choose at least one item")
            rows = session.execute(
                select(Item.id, Item.round, Item.status).where(
                    Item.project_id == project.id, Item.id.in_(request.item_ids)
                )
            ).all()
            unknown = set(request.item_ids) - {r[0] for r in rows}
            if unknown:
                raise Invalid(f"Items not in this project: {sorted(unknown)[:10]}")
            # A pending item gets its first candidates; one with candidates gets a new round.
            params["pending"] = sorted(r[0] for r in rows if r[2] == "pending")
            targets = {r[0]: r[1] for r in rows if r[2] != "pending"}
        else:
            targets = _all_bad_items(session, project)
            params["pending"] = []
        params["regenerate"] = {str(item_id): round_ for item_id, round_ in sorted(targets.items())}
        total = len(params["pending"]) + len(targets)
    if total == 0:
        raise Invalid("No items to generate for")
    return jobs.enqueue(session, kind=KIND, project_id=project.id, params=params, total=total, created_by_id=user_id)


def clean_text(text: str) -> str:
    """Model output as storable text: NUL (which PostgreSQL text cannot hold) becomes U+FFFD."""
    return text.replace("\x00", "\ufffd")


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
    session.execute(
        insert(Candidate),
        [
            {
                "item_id": item_id,
                "round": new_round,
                "position": i,
                "text": clean_text(s.text),
                "model": s.model,
                "base_url": s.base_url,
                "params": s.params,
                "seed": s.seed,
                "finish_reason": s.finish_reason,
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "latency_ms": round(s.latency_ms, 1),
                "created_at": now,
            }
            for i, s in enumerate(samples)
        ],
    )
    session.flush()
    return True
