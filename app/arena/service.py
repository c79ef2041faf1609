"""Arena rules: making an arena (a project of kind "arena" under its parent), and opening it once generated.

An arena is made with its items and a generation job (strategy per_model: one candidate per model), but without
members. Once the job has finished, ``open_arena`` — run (in a write session of its own, ``open_finished``) before
every arena page and API read — blinds the candidates
(each item's answers are shuffled across its candidate rows, so neither a candidate's id nor its position tells
the model), takes out the items whose answers are all identical (kept in ``arena["identical"]``: ties, never
asked), and only then copies the parent's members in. So no annotator is ever served an item before that.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.arena.prompts import parse_prompts
from app.arena.schemas import MAX_PROMPTS, ArenaIn
from app.db import Database, for_update
from app.export.pairs import split_of
from app.generation import service as generation
from app.generation.schemas import GenerationSettings, JobIn
from app.items.importer import prompt_hash
from app.kit.errors import Invalid, NotFound
from app.models import Candidate, Item, Job, Judgment, Project, ProjectMember, RegisteredModel, Snapshot, User
from app.projects.service import slugify

# The parent's sampling settings an arena keeps; servers and models come from the registered models.
SAMPLING = ("mode", "temperature", "top_p", "max_tokens", "stop", "seed", "timeout_s", "max_retries")
FINAL_JOB_STATES = ("done", "failed", "cancelled")
IDENTICAL_LISTED = 100
# The candidate columns that travel together when an item's answers are shuffled across its rows.
BLINDED = ("text", "model", "base_url", "params", "seed", "finish_reason", "prompt_tokens", "completion_tokens")
BLINDED_ALSO = ("latency_ms", "model_id", "weights_sha256")


def arena_models(session: Session, *, parent: Project, model_ids: list[int]) -> list[RegisteredModel]:
    """The registered models of ``parent`` named, in that order; each must have an endpoint."""
    found = {
        m.id: m
        for m in session.scalars(
            select(RegisteredModel).where(RegisteredModel.project_id == parent.id, RegisteredModel.id.in_(model_ids))
        )
    }
    missing = [i for i in model_ids if i not in found]
    if missing:
        raise Invalid(f"Models not registered in this project: {missing}")
    unserved = [found[i].name for i in model_ids if not (found[i].base_url and found[i].served_name)]
    if unserved:
        raise Invalid(f"Models without a serving endpoint (base URL and served name): {', '.join(unserved)}")
    return [found[i] for i in model_ids]


def _snapshot_prompts(
    session: Session, *, parent: Project, snapshot_id: int
) -> list[tuple[str | None, Any, int | None]]:
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.project_id != parent.id:
        raise NotFound("No such snapshot in this project")
    if snapshot.state != "ready":
        raise Invalid("The snapshot is not ready")
    share = float((snapshot.filters or {}).get("test_share", 0.1))
    rows = session.execute(
        select(Item.id, Item.external_id, Item.prompt)
        .where(Item.project_id == parent.id, Item.is_gold.is_(False))
        .order_by(Item.id)
    ).tuples()
    # The same deterministic split as the snapshot's rows (app.export.rows): held out from its training pairs.
    return [(ext, prompt, item_id) for item_id, ext, prompt in rows if split_of(parent.slug, item_id, share) == "test"]


def _unique_slug(session: Session, base: str) -> str:
    base = base[:56].strip("-") or "arena"
    slug, n = base, 1
    while session.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _override(models: list[RegisteredModel]) -> dict[str, Any]:
    return {
        "strategy": "per_model",
        "models": [
            {"model": m.served_name, "base_url": m.base_url, "model_id": m.id, "weights_sha256": m.weights_sha256}
            for m in models
        ],
    }


def create_arena(session: Session, *, parent: Project, data: ArenaIn, user: User | None) -> tuple[Project, Job]:
    """Make the arena project, its items (pending) and its generation job; members join when it opens."""
    if parent.kind != "preference":
        raise Invalid("An arena is made from a preference project")
    models = arena_models(session, parent=parent, model_ids=list(data.model_ids))
    if data.snapshot_id is not None:
        prompts = _snapshot_prompts(session, parent=parent, snapshot_id=data.snapshot_id)
        source: dict[str, Any] = {"snapshot_id": data.snapshot_id, "split": "test"}
        if not prompts:
            raise Invalid("The snapshot's test split has no prompts")
        if len(prompts) > MAX_PROMPTS:
            raise Invalid(f"At most {MAX_PROMPTS} prompts per arena ({len(prompts)} in the test split)")
    else:
        prompts = [(ext, p, None) for ext, p in parse_prompts(data.prompts or "", limit=MAX_PROMPTS)]
        source = {"imported": True}
    sampling = {k: v for k, v in (parent.generation or {}).items() if k in SAMPLING}
    override = _override(models)
    arena = Project(
        slug=_unique_slug(session, f"{parent.slug}-{slugify(data.name)}"),
        name=data.name,
        kind="arena",
        parent_id=parent.id,
        guidelines=parent.guidelines,
        dimensions=parent.dimensions,
        k=len(models),
        overlap=data.overlap,
        lease_minutes=parent.lease_minutes,
        ranking_mode=parent.ranking_mode,
        strength=parent.strength,
        gold_share=0.0,
        generation=GenerationSettings.model_validate({**sampling, **override}).model_dump(),
        arena={"model_ids": [m.id for m in models], "prompts": source, "opened": False},
    )
    session.add(arena)
    session.flush()
    _add_items(session, arena=arena, prompts=prompts)
    job = generation.start_job(
        session, project=arena, request=JobIn(selection="missing"), user_id=user.id if user else None
    )
    job.params = {**job.params, "settings": override}
    arena.arena = {**arena.arena, "job_id": job.id}
    session.flush()
    return arena, job


def _add_items(session: Session, *, arena: Project, prompts: list[tuple[str | None, Any, int | None]]) -> None:
    """The arena's items, pending; a repeated prompt (or external id) is kept once."""
    hashes: set[str] = set()
    externals: set[str] = set()
    for external, prompt, source_id in prompts:
        digest = prompt_hash(prompt)
        if digest in hashes:
            continue
        hashes.add(digest)
        ext = external if external is not None and external not in externals else None
        if ext is not None:
            externals.add(ext)
        meta = {"source_item_id": source_id} if source_id is not None else {}
        session.add(
            Item(project_id=arena.id, external_id=ext, prompt=prompt, prompt_hash=digest, meta=meta, status="pending")
        )
    session.flush()


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _blind_and_sort(session: Session, arena: Project) -> list[int]:
    """Shuffle each item's answers across its candidate rows (seeded by arena and item); the ids of the items
    whose answers are all identical."""
    rows = session.scalars(
        select(Candidate)
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == arena.id, Item.status == "ready")
        .order_by(Candidate.item_id, Candidate.position)
    ).all()
    by_item: dict[int, list[Candidate]] = {}
    for c in rows:
        by_item.setdefault(c.item_id, []).append(c)
    identical = []
    for item_id, candidates in by_item.items():
        if len({_normalised(c.text) for c in candidates}) == 1:
            identical.append(item_id)
            continue
        values = [{col: getattr(c, col) for col in (*BLINDED, *BLINDED_ALSO)} for c in candidates]
        order = list(range(len(candidates)))  # row i takes the answer that was at position order[i]
        random.Random(f"arena:{arena.id}:{item_id}").shuffle(order)
        for c, old in zip(candidates, order, strict=True):
            for col, value in values[old].items():
                setattr(c, col, value)
            if "duplicate_of" in (c.params or {}):  # a position: where that answer is now
                c.params = {**c.params, "duplicate_of": order.index(c.params["duplicate_of"])}
    session.flush()
    return identical


def _any_ready(session: Session, arena_id: int) -> bool:
    query = select(Item.id).where(Item.project_id == arena_id, Item.status == "ready").limit(1)
    return session.scalar(query) is not None


def open_arena(session: Session, *, arena_id: int) -> bool:
    """Once its generation job has finished: blind the candidates, set identical answers aside, let the parent's
    members in. True when it opened now; idempotent (a write session: the arena's row is locked on PostgreSQL,
    SQLite's write transaction holds the database)."""
    arena = session.scalar(for_update(session, select(Project).where(Project.id == arena_id, Project.kind == "arena")))
    if arena is None:
        return False
    job_id = arena.arena.get("job_id")
    if arena.arena.get("opened") or job_id is None:
        return False
    job = session.get(Job, job_id)
    if job is not None and job.state not in FINAL_JOB_STATES:
        return False
    if job is not None and job.state != "done" and not _any_ready(session, arena.id):
        return False  # generation failed outright: nothing to judge (a later job from its Generation page may do)
    identical_ids = _blind_and_sort(session, arena)
    listed = [
        {"item_id": i, "prompt": p, "text": t[:1000]}
        for i, p, t in session.execute(
            select(Item.id, Item.prompt, Candidate.text)
            .join(Candidate, (Candidate.item_id == Item.id) & (Candidate.position == 0))
            .where(Item.id.in_(identical_ids[:IDENTICAL_LISTED]))
        ).tuples()
    ]
    if identical_ids:
        session.execute(delete(Item).where(Item.id.in_(identical_ids)))
    members = session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == arena.parent_id)).all()
    for user_id in members:
        session.add(ProjectMember(project_id=arena.id, user_id=user_id))
    arena.arena = {**arena.arena, "opened": True, "identical": {"count": len(identical_ids), "listed": listed}}
    session.flush()
    return True


def identical_count(arena: Project) -> int:
    return int((arena.arena.get("identical") or {}).get("count", 0))


def unopened_ids(session: Session, *, parent_id: int) -> list[int]:
    """The ids of the parent's arenas not opened yet."""
    found = session.execute(select(Project.id, Project.arena).where(Project.parent_id == parent_id)).tuples()
    return [i for i, settings in found if not (settings or {}).get("opened")]


def open_finished(db: Database, *, parent_id: int) -> None:
    """Open the parent's arenas whose generation has finished, each in a write transaction of its own."""
    with db.session(write=False) as s:
        waiting = unopened_ids(s, parent_id=parent_id)
    for arena_id in waiting:
        with db.session() as s:
            open_arena(s, arena_id=arena_id)


def arenas_of(session: Session, *, parent: Project) -> list[Project]:
    """The parent's arenas, newest first."""
    return list(
        session.scalars(
            select(Project).where(Project.parent_id == parent.id).order_by(Project.created_at.desc(), Project.id.desc())
        )
    )


def counts(session: Session, *, arena: Project) -> tuple[int, int]:
    """(items, judgments) of an arena."""
    items = session.scalar(select(func.count()).select_from(Item).where(Item.project_id == arena.id)) or 0
    judged = session.scalar(select(func.count()).select_from(Judgment).where(Judgment.project_id == arena.id)) or 0
    return items, judged


def job_state(session: Session, *, arena: Project) -> str | None:
    job_id = arena.arena.get("job_id")
    return session.scalar(select(Job.state).where(Job.id == job_id)) if job_id is not None else None


def arena_named(session: Session, *, slug: str) -> Project:
    """The arena project with this slug; NotFound for any other project."""
    arena = session.scalar(select(Project).where(Project.slug == slug, Project.kind == "arena"))
    if arena is None:
        raise NotFound("No such arena")
    return arena


def served_models(session: Session, *, parent: Project) -> list[RegisteredModel]:
    """The parent's registered models that have a serving endpoint (those an arena may use)."""
    return list(
        session.scalars(
            select(RegisteredModel)
            .where(
                RegisteredModel.project_id == parent.id,
                RegisteredModel.base_url.is_not(None),
                RegisteredModel.served_name.is_not(None),
            )
            .order_by(RegisteredModel.id)
        )
    )


def ready_snapshots(session: Session, *, parent: Project) -> list[Snapshot]:
    """The parent's ready snapshots, newest first (an arena may take one's test split)."""
    query = select(Snapshot).where(Snapshot.project_id == parent.id, Snapshot.state == "ready")
    return list(session.scalars(query.order_by(Snapshot.id.desc())))
