"""Checking the lines of a judgments file against the project: their items, their annotators, what those already
did on the items, and the rules of a submitted judgment."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.judgments import _validate_verdicts
from app.annotation.schemas import VerdictIn
from app.items.importer import MAX_DUPLICATES_LISTED, MAX_ERRORS
from app.items.judgment_lines import JudgmentLine, PositionVerdict
from app.items.readers import LineError
from app.kit.errors import Invalid
from app.kit.schemas import shown
from app.models import Assignment, Candidate, Item, Project, User

CHUNK = 1000
KEY_PREFIX = "import-"
T = TypeVar("T")


@dataclass
class JudgmentImportResult:
    lines: int = 0
    judgments: int = 0  # stored (a dry run: that would be stored)
    items: int = 0
    annotators_created: list[str] = field(default_factory=list)
    annotators_matched: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_DUPLICATES_LISTED
    skipped_count: int = 0
    already_imported: bool = False
    dry_run: bool = False
    sha256: str = ""


class _Cand(NamedTuple):
    id: int  # all that the judgment rules read of a candidate


@dataclass
class Target:
    """An item as the lines name it: its current round's candidate ids by position."""

    id: int
    round: int
    candidates: list[int]


@dataclass
class Checked:
    line: int
    judgment: JudgmentLine
    item: Target
    verdicts: dict[str, IdVerdict]
    reuse_assignment: int | None = None  # a skipped or lapsed lease of the annotator on this item


@dataclass
class Errors:
    errors: list[dict[str, Any]] = field(default_factory=list)
    more: int = 0

    def add(self, line: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "message": shown(message)})
        else:
            self.more += 1


def submit_key_of(project_id: int, sha256: str, line: int) -> str:
    """The submit key of an imported line: the same file, line and project always give the same key."""
    digest = hashlib.sha256(f"{project_id}:{sha256}:{line}".encode()).hexdigest()
    return KEY_PREFIX + digest[: 64 - len(KEY_PREFIX)]


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _targets(session: Session, project: Project, external_ids: list[str]) -> dict[str, Target]:
    """The project's items with these external ids, with their current round's candidates."""
    targets: dict[str, Target] = {}
    for chunk in chunks(external_ids):
        rows = session.execute(
            select(Item.external_id, Item.id, Item.round, Candidate.id)
            .join(Candidate, (Candidate.item_id == Item.id) & (Candidate.round == Item.round), isouter=True)
            .where(Item.project_id == project.id, Item.external_id.in_(chunk))
            .order_by(Item.id, Candidate.position)
        )
        for external_id, item_id, round_, candidate_id in rows:
            target = targets.setdefault(external_id, Target(item_id, round_, []))
            if candidate_id is not None:
                target.candidates.append(candidate_id)
    return targets


def _annotators(session: Session, names: list[str], *, as_members: bool) -> tuple[dict[str, User], set[str], set[str]]:
    """Existing users by name, the names that need an ordinary user (refused unless ``as_members``), and the new
    names."""
    users: dict[str, User] = {}
    for chunk in chunks(names):
        users.update((u.username, u) for u in session.scalars(select(User).where(User.username.in_(chunk))))
    ordinary = {name for name, user in users.items() if not user.external and not as_members}
    return users, ordinary, set(names) - set(users)


def _existing(session: Session, project: Project, user_ids: list[int], item_ids: list[int]) -> dict[Any, Any]:
    """(item id, annotator id, round) → (assignment id, status) of the given users' assignments on these items."""
    found: dict[Any, Any] = {}
    if not user_ids:
        return found
    for chunk in chunks(item_ids):
        rows = session.execute(
            select(Assignment.item_id, Assignment.annotator_id, Assignment.round, Assignment.id, Assignment.status)
            .where(Assignment.project_id == project.id, Assignment.item_id.in_(chunk))
            .where(Assignment.annotator_id.in_(user_ids))
        )
        found.update(((r[0], r[1], r[2]), (r[3], r[4])) for r in rows)
    return found


class IdVerdict(NamedTuple):
    """A verdict in candidate ids, with the fields of ``VerdictIn`` that the judgment rules and the verdict table
    read. Not a ``VerdictIn``: ``judgment_line`` checked every rule of that model already (kinds and their fields,
    distinct candidates, strength 1–3, rankings and their gaps), and building 600k of them (100k judgments, six
    dimensions) took longer than the rest of the checks together."""

    kind: str
    chosen: int | None
    rejected: int | None
    strength: int | None
    ranking: list[list[int]] | None
    much: list[int] | None

    def stored_ranking(self) -> dict[str, Any] | None:
        return {"tiers": self.ranking, "much": self.much} if self.kind == "ranking" else None


def _in_ids(verdicts: dict[str, PositionVerdict], candidates: list[int]) -> dict[str, IdVerdict]:
    """Positions → this round's candidate ids."""
    return {
        dim: IdVerdict(
            v.kind,
            candidates[v.chosen] if v.chosen is not None else None,
            candidates[v.rejected] if v.rejected is not None else None,
            v.strength,
            [[candidates[p] for p in tier] for tier in v.ranking] if v.ranking is not None else None,
            list(v.much) if v.much is not None else None,
        )
        for dim, v in verdicts.items()
    }


def _check_rules(project: Project, line: JudgmentLine, target: Target) -> dict[str, IdVerdict]:
    """The line's verdicts in candidate ids, checked by the rules of a submitted judgment; a LineError if not."""
    verdicts = _in_ids(line.verdicts, target.candidates)
    try:
        # The rules read only the candidates' ids, and of each verdict the fields that IdVerdict has.
        candidates = cast(list[Candidate], [_Cand(c) for c in target.candidates])
        _validate_verdicts(project, candidates, cast(dict[str, VerdictIn], verdicts))
    except Invalid as exc:
        raise LineError(str(exc.detail)) from exc
    return verdicts


@dataclass
class Plan:
    """What the lines will write, once every line has passed."""

    checked: list[Checked] = field(default_factory=list)
    users: dict[str, User] = field(default_factory=dict)
    new_names: list[str] = field(default_factory=list)


def check_lines(
    session: Session,
    project: Project,
    lines: list[tuple[int, JudgmentLine]],
    errors: Errors,
    result: JudgmentImportResult,
    *,
    skip_existing: bool,
    as_members: bool,
) -> Plan:
    """Each line against the database: its item, its annotator, what they already did on the item, the rules."""
    targets = _targets(session, project, sorted({j.item for _, j in lines}))
    names = sorted({j.annotator for _, j in lines})
    users, ordinary, new = _annotators(session, names, as_members=as_members)
    existing = _existing(
        session, project, sorted(u.id for u in users.values()), sorted({t.id for t in targets.values()})
    )
    plan = Plan(users=users, new_names=sorted(new))
    refused: set[str] = set()
    for line, judgment in lines:
        target = targets.get(judgment.item)
        if target is None:
            errors.add(line, f"no item with id {judgment.item!r} in this project")
            continue
        if len(target.candidates) != project.k:
            errors.add(line, f"item {judgment.item!r} has no candidates to judge yet")
            continue
        if judgment.annotator in ordinary:
            if judgment.annotator not in refused:  # once per name: its first line
                refused.add(judgment.annotator)
                errors.add(
                    line,
                    f"{judgment.annotator!r} is an existing user: to import their judgments as theirs, import with "
                    "--as-members (as_members=true); otherwise rename the annotator in the file",
                )
            continue
        user = users.get(judgment.annotator)
        held = existing.get((target.id, user.id, target.round)) if user is not None else None
        reuse = None
        if held is not None:
            assignment_id, status = held
            if status == "submitted" and skip_existing:
                result.skipped_count += 1
                if len(result.skipped) < MAX_DUPLICATES_LISTED:
                    result.skipped.append({"line": line, "reason": "already judged by this annotator"})
                continue
            if status in ("submitted", "leased"):
                what = "already judged" if status == "submitted" else "is judging"
                errors.add(line, f"{judgment.annotator!r} {what} item {judgment.item!r} (its current candidates)")
                continue
            reuse = assignment_id  # skipped, or a lease that lapsed: it becomes the judged one
        try:
            verdicts = _check_rules(project, judgment, target)
        except LineError as exc:
            errors.add(line, str(exc))
            continue
        plan.checked.append(Checked(line, judgment, target, verdicts, reuse))
    return plan
