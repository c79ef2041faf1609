"""Rows for tests, made through the services where a rule applies and directly where none does."""

from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from app.kit.security import hash_password
from app.models import Candidate, Item, Project, ProjectMember, User

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
