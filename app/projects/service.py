"""Projects: create, edit, members, and the counts the project page shows."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation.overlap import is_complete
from app.i18n import gettext
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import Candidate, Item, Judgment, Project, ProjectMember, User
from app.projects.schemas import ProjectIn, ProjectPatch


@dataclass
class Counts:
    items: int
    with_candidates: int
    fully_judged: int
    judgments: int
    members: int


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48]
    return slug or "project"


def create_project(session: Session, *, data: ProjectIn) -> Project:
    """A new project; the slug comes from the name when not given, made unique with a number."""
    slug = data.slug or slugify(data.name)
    if data.slug and session.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        raise Conflict(f"A project with slug {slug!r} exists")
    base, n = slug, 2
    while session.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        slug, n = f"{base}-{n}", n + 1
    project = Project(
        slug=slug,
        name=data.name.strip(),
        guidelines=data.guidelines,
        dimensions=[d.stored() for d in data.dimensions],
        k=data.k,
        overlap=data.overlap,
        lease_minutes=data.lease_minutes,
        gold_share=data.gold_share,
        gold_min_accuracy=data.gold_min_accuracy,
        ranking_mode=data.ranking_mode,
        strength=data.strength,
        cohen_min_items=data.cohen_min_items,
        suggestions=data.suggestions,
        queue_order=data.queue_order,
        overlap_min=data.overlap_min,
        adaptive_margin=data.adaptive_margin,
        generation={},
    )
    session.add(project)
    session.flush()
    return project


def update_project(session: Session, *, project: Project, data: ProjectPatch) -> Project:
    """Edit a project; k is fixed once items have candidates."""
    if data.k is not None and data.k != project.k:
        has_candidates = session.scalar(
            select(Candidate.id).join(Item, Item.id == Candidate.item_id).where(Item.project_id == project.id).limit(1)
        )
        if has_candidates is not None:
            raise Conflict("k cannot change once items have candidates")
        project.k = data.k
    if data.name is not None:
        project.name = data.name.strip()
    if data.guidelines is not None:
        project.guidelines = data.guidelines
    if data.dimensions is not None:
        project.dimensions = [d.stored() for d in data.dimensions]
    if data.overlap is not None:
        project.overlap = data.overlap
    if data.lease_minutes is not None:
        project.lease_minutes = data.lease_minutes
    if data.gold_share is not None:
        project.gold_share = data.gold_share
    if data.gold_min_accuracy is not None:
        project.gold_min_accuracy = data.gold_min_accuracy
    # Judgments already stored keep the shape they were given (their pairs do not depend on these settings).
    if data.ranking_mode is not None:
        project.ranking_mode = data.ranking_mode
    if data.strength is not None:
        project.strength = data.strength
    if data.cohen_min_items is not None:
        project.cohen_min_items = data.cohen_min_items
    if data.suggestions is not None:
        project.suggestions = data.suggestions
    if data.queue_order is not None:
        project.queue_order = data.queue_order
    if data.adaptive_margin is not None:
        project.adaptive_margin = data.adaptive_margin
    if data.overlap_min is not None:
        project.overlap_min = data.overlap_min or None
    if project.overlap_min is not None and project.overlap_min > project.overlap:
        raise Invalid("The least overlap (r_min) cannot be above the overlap (r_max)")
    session.flush()
    return project


def dimensions_from_rows(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The form's dimension rows (key, label, description, required, and ``label@<locale>`` /
    ``description@<locale>`` for other UI languages) as dicts: an empty row is left out, a row without a label
    takes its key's, and the text is kept as typed (the project's schema checks it)."""
    dims: list[dict[str, Any]] = []
    for n, row in enumerate(rows, start=1):
        key, label, description = (row.get(field, "") for field in ("key", "label", "description"))
        translated = {name: value for name, value in row.items() if "@" in name and value.strip()}
        if not key.strip():
            if label.strip() or description.strip() or translated:
                raise Invalid(f"Dimension row {n}: a key is needed")
            continue
        labels: dict[str, dict[str, str]] = {}
        for name, value in translated.items():
            field, _, locale = name.partition("@")
            labels.setdefault(locale, {"label": "", "description": ""})[field] = value
        dim: dict[str, Any] = {
            "key": key.strip(),
            "label": label if label.strip() else key.strip().title(),
            "description": description,
            "required": row.get("required", "1") != "0",
        }
        if labels:
            dim["labels"] = labels
        dims.append(dim)
    return dims


def list_projects(session: Session, *, user: User) -> list[Project]:
    query = select(Project).order_by(Project.created_at.desc(), Project.id.desc())
    if not user.is_admin:
        query = query.join(ProjectMember, ProjectMember.project_id == Project.id).where(
            ProjectMember.user_id == user.id
        )
    return list(session.scalars(query))


def counts(session: Session, *, project: Project) -> Counts:
    items = session.execute(
        select(
            func.count(),
            func.count().filter(Item.status == "ready"),
            func.count().filter(is_complete(project)),  # fully judged: the judgments it wants, not reopened
        ).where(Item.project_id == project.id)
    ).one()
    judgments = session.scalar(select(func.count()).select_from(Judgment).where(Judgment.project_id == project.id))
    members = session.scalar(
        select(func.count()).select_from(ProjectMember).where(ProjectMember.project_id == project.id)
    )
    return Counts(int(items[0]), int(items[1]), int(items[2]), int(judgments or 0), int(members or 0))


def members(session: Session, *, project: Project) -> list[dict[str, Any]]:
    judged = (
        select(Judgment.annotator_id, func.count().label("n"))
        .where(Judgment.project_id == project.id)
        .group_by(Judgment.annotator_id)
        .subquery()
    )
    rows = session.execute(
        select(User, func.coalesce(judged.c.n, 0))
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .outerjoin(judged, judged.c.annotator_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.username)
    ).all()
    return [
        {"user_id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role, "judgments": int(n)}
        for u, n in rows
    ]


def add_member(session: Session, *, project: Project, username: str) -> User:
    if not username.strip():
        raise Invalid("Give the username to add")
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise NotFound(f"No user {username!r}")
    exists = session.scalar(
        select(ProjectMember.id).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user.id)
    )
    if exists is None:
        session.add(ProjectMember(project_id=project.id, user_id=user.id))
        session.flush()
        session.info.pop(_membership_key(project.id, user.id), None)
    return user


def split_usernames(text: str) -> list[str]:
    """Usernames as typed or pasted: one a line, or separated by commas or spaces; each once, in order."""
    return list(dict.fromkeys(name for name in re.split(r"[\s,;]+", text) if name))


def add_members(session: Session, *, project: Project, usernames: list[str]) -> list[User]:
    """Add several users at once, all or none: when a name is unknown nobody is added and the error lists every
    unknown name (the admin corrects the list and sends it again)."""
    if not usernames:
        raise Invalid(gettext("Give at least one username to add."))
    known = set(session.scalars(select(User.username).where(User.username.in_(usernames))))
    unknown = [name for name in usernames if name not in known]
    if unknown:
        raise Invalid(
            gettext("No user is called {names}. Nobody was added: correct the list and add again.").format(
                names=", ".join(unknown)
            )
        )
    return [add_member(session, project=project, username=name) for name in usernames]


def remove_member(session: Session, *, project: Project, user_id: int) -> None:
    member = session.scalar(
        select(ProjectMember).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
    )
    if member is None:
        raise NotFound("Not a member")
    session.delete(member)
    session.flush()
    session.info.pop(_membership_key(project.id, user_id), None)


def recent_activity(session: Session, *, project: Project, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Judgment.id, Judgment.item_id, Judgment.updated_at, Judgment.version, User.username)
        .join(User, User.id == Judgment.annotator_id)
        .where(Judgment.project_id == project.id)
        .order_by(Judgment.updated_at.desc())
        .limit(limit)
    ).all()
    return [{"judgment_id": r[0], "item_id": r[1], "at": r[2], "version": r[3], "username": r[4]} for r in rows]


def set_paused(session: Session, *, project: Project, user_id: int, paused: bool) -> None:
    """Pause (no new items) or resume an annotator in this project; their open lease runs out as usual."""
    member = session.scalar(
        select(ProjectMember).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
    )
    if member is None:
        raise NotFound("Not a member")
    member.paused = paused
    session.flush()
    session.info.pop(_membership_key(project.id, user_id), None)


def _membership_key(project_id: int, user_id: int) -> tuple[str, int, int]:
    return ("membership", project_id, user_id)


def remember_membership(session: Session, *, project_id: int, user_id: int, paused: bool | None) -> None:
    """What the request's project lookup found: whether an admin paused the user, None if not a member (see
    ``is_paused``)."""
    session.info[_membership_key(project_id, user_id)] = paused


def is_paused(session: Session, *, project_id: int, user_id: int) -> bool:
    """Whether an admin paused the user's work in the project (never so for a non-member, such as an admin);
    the membership is read once per session (the project lookup of a request reads it already)."""
    key = _membership_key(project_id, user_id)
    if key not in session.info:
        session.info[key] = session.scalar(
            select(ProjectMember.paused).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
        )
    return bool(session.info[key])
