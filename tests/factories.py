"""Rows for tests, made through the services where a rule applies and directly where none does."""

from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.tallies import count_judgment
from app.kit.security import hash_password
from app.models import Assignment, Candidate, Item, Judgment, Project, ProjectMember, User, Verdict, utcnow

PASSWORD = "password123"
_counter = itertools.count(1)


@lru_cache
def _password_hash() -> str:
    # Hashing once keeps tests fast; argon2id itself is exercised by the auth tests.
    return hash_password(PASSWORD)


def make_user(session: Session, username: str, *, role: str = "annotator") -> User:
    user = User(username=username, display_name=username, password_hash=_password_hash(), role=role)
    session.add(user)
    session.flush()
    return user


def make_project(
    session: Session,
    slug: str = "proj",
    *,
    k: int = 2,
    overlap: int = 3,
    members: list[User] | None = None,
    **fields: Any,
) -> Project:
    project = Project(slug=slug, name=fields.pop("name", slug.title()), k=k, overlap=overlap, **fields)
    session.add(project)
    session.flush()
    for user in members or []:
        session.add(ProjectMember(project_id=project.id, user_id=user.id))
    session.flush()
    return project


def make_item(
    session: Session,
    project: Project,
    prompt: Any = None,
    *,
    candidates: list[str] | None = None,
    external_id: str | None = None,
) -> Item:
    prompt = prompt if prompt is not None else f"prompt {next(_counter)}"
    texts = candidates if candidates is not None else [f"answer {i}" for i in range(project.k)]
    item = Item(
        project_id=project.id,
        external_id=external_id,
        prompt=prompt,
        prompt_hash=hashlib.sha256(repr(prompt).encode()).hexdigest(),
        status="ready" if texts else "pending",
    )
    session.add(item)
    session.flush()
    for position, text in enumerate(texts):
        session.add(Candidate(item_id=item.id, position=position, text=text, model="test-model"))
    session.flush()
    return item


def make_items(session: Session, project: Project, n: int) -> list[Item]:
    return [make_item(session, project, f"prompt number {i}") for i in range(n)]


def make_judgment(
    session: Session,
    item: Item,
    annotator: User,
    verdicts: dict[str, tuple[str, int | None, int | None]],
    *,
    reason: str = "",
    problematic: bool = False,
    all_bad: bool = False,
) -> Judgment:
    """A submitted judgment written directly (no queue): verdicts as {dimension: (kind, chosen, rejected)} in
    canonical candidate positions."""
    ids = {
        c.position: c.id
        for c in session.scalars(select(Candidate).where(Candidate.item_id == item.id, Candidate.round == item.round))
    }
    assignment = Assignment(
        project_id=item.project_id,
        item_id=item.id,
        annotator_id=annotator.id,
        round=item.round,
        status="submitted",
        display_order=list(ids.values()),
        lease_expires_at=utcnow(),
    )
    session.add(assignment)
    session.flush()
    judgment = Judgment(
        project_id=item.project_id,
        item_id=item.id,
        annotator_id=annotator.id,
        assignment_id=assignment.id,
        round=item.round,
        reason=reason,
        flag_problematic=problematic,
        flag_all_bad=all_bad,
        submit_key=f"test-{next(_counter)}",
    )
    session.add(judgment)
    session.flush()
    count_judgment(session, project_id=item.project_id, annotator_id=annotator.id, gold=item.is_gold)
    for dimension, (kind, chosen, rejected) in verdicts.items():
        session.add(
            Verdict(
                judgment_id=judgment.id,
                dimension=dimension,
                kind=kind,
                chosen_candidate_id=ids[chosen] if chosen is not None else None,
                rejected_candidate_id=ids[rejected] if rejected is not None else None,
            )
        )
    item.claims += 1
    item.judgment_count += 1
    session.flush()
    return judgment
