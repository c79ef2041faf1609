"""Judgments: storing one for a lease (once, whatever the retries), editing it, reading them back."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.annotation import overlap, repository
from app.annotation.dimensions import dimension_keys, required_keys
from app.annotation.queue import own_assignment, task_for
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.annotation.suggestions import suggestion_was_shown
from app.annotation.tallies import count_judgment
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import OVERALL, Assignment, Candidate, Item, Judgment, Project, User, Verdict, utcnow
from app.webhooks import events as webhook_events

# Why a submission for a regenerated item is refused: its candidates left the queue, the export and the agreement
# figures (all of them read the item's current round), so a judgment stored for them would be counted nowhere.
REGENERATED = (
    "This item's candidates were regenerated while you judged them, so your judgment was not stored; "
    "the new candidates are waiting to be judged"
)


class Superseded(Conflict):
    """A submission for a candidate round that is no longer the item's: refused before anything is written."""


class StaleEdit(Conflict):
    """An edit of a judgment's older version (it was changed elsewhere since): nothing is written."""


def submit_digest(data: JudgmentIn) -> str:
    """The fingerprint of an answer as stored: verdicts, reason and flags (not the seconds on task, which a
    page that resends a kept draft measures anew)."""
    answer = {
        "verdicts": {dim: _digested(verdict) for dim, verdict in sorted(data.verdicts.items())},
        "reason": data.reason.strip(),
        "all_bad": data.all_bad,
        "problematic": data.problematic,
    }
    return hashlib.sha256(json.dumps(answer, sort_keys=True).encode()).hexdigest()


def _digested(verdict: VerdictIn) -> dict[str, object]:
    # The fields added with rankings and strength count only when given, so an answer without them keeps the
    # fingerprint it had before they existed (a retry of it is still recognised).
    later = ("strength", "ranking", "much")
    return {key: value for key, value in verdict.model_dump().items() if value is not None or key not in later}


def _replayed(judgment: Judgment, *, assignment: Assignment, digest: str) -> Judgment:
    """The stored judgment of a submit key, when this submission is its retry; otherwise a 409 (nothing stored)."""
    if judgment.annotator_id != assignment.annotator_id or judgment.project_id != assignment.project_id:
        raise Conflict("This submit key was already used")
    if judgment.assignment_id != assignment.id:
        raise Conflict(
            f"This submit key was already used for your judgment of another item (judgment {judgment.id}); "
            "this judgment was not stored: send it again with a new submit key"
        )
    if judgment.submit_digest is not None and judgment.submit_digest != digest:
        raise Conflict(
            "This submit key was already used with a different answer for this item; this answer was not stored: "
            "to change the judgment, edit it"
        )
    return judgment


def _validate_verdicts(project: Project, candidates: list[Candidate], verdicts: dict[str, VerdictIn]) -> None:
    expected = dimension_keys(project)
    missing = [d for d in required_keys(project) if d not in verdicts]
    unknown = [d for d in verdicts if d not in expected]
    if missing:
        raise Invalid(f"Missing verdicts for: {', '.join(missing)}")
    if unknown:
        raise Invalid(f"Unknown dimensions: {', '.join(unknown)}")
    ids = {c.id for c in candidates}
    for dim, verdict in verdicts.items():
        _validate_shape(project, ids, dim, verdict)
    if verdicts[OVERALL].kind == "na":
        raise Invalid("overall: choose a candidate or tie")


def _validate_shape(project: Project, ids: set[int], dim: str, verdict: VerdictIn) -> None:
    """The verdict is one this project asks for: best and worst, or a ranking of every candidate (rank mode,
    k ≥ 3); a strength exactly when the project asks for one (k = 2)."""
    ranks = project.ranking_mode == "rank" and len(ids) > 2
    if verdict.kind == "preference":
        if not {verdict.chosen, verdict.rejected} <= ids:
            raise Invalid(f"{dim}: candidates must belong to this item")
        if ranks:
            raise Invalid(f"{dim}: this project ranks every candidate: send a ranking")
        asks_strength = project.strength and len(ids) == 2
        if asks_strength and verdict.strength is None:
            raise Invalid(f"{dim}: say how much better (strength 1–3)")
        if not asks_strength and verdict.strength is not None:
            raise Invalid(f"{dim}: this project does not ask how much better")
    elif verdict.kind == "ranking":
        if not ranks:
            raise Invalid(f"{dim}: this project does not rank candidates")
        ranked = {cid for tier in verdict.ranking or [] for cid in tier}
        if ranked != ids:
            raise Invalid(f"{dim}: a ranking orders every candidate of this item, each once")


def _verdict_rows(judgment_id: int, verdicts: dict[str, VerdictIn]) -> list[Verdict]:
    return [
        Verdict(
            judgment_id=judgment_id,
            dimension=dim,
            kind=verdict.kind,
            chosen_candidate_id=verdict.chosen,
            rejected_candidate_id=verdict.rejected,
            strength=verdict.strength,
            ranking=verdict.stored_ranking(),
        )
        for dim, verdict in verdicts.items()
    ]


def _retake_lapsed_lease(session: Session, *, project: Project, assignment: Assignment) -> None:
    """Claim the item of a lapsed lease again for its submission, if it still has room; otherwise a 409."""
    # Only on the round judged: a regeneration since the candidates were read (another transaction) moved the
    # item on.
    taken = session.execute(
        update(Item)
        .where(Item.id == assignment.item_id, Item.round == assignment.round, overlap.has_room(project))
        .values(claims=Item.claims + 1)
    )
    if taken.rowcount == 0:  # type: ignore[attr-defined]
        if repository.item_round(session, assignment.item_id) != assignment.round:
            raise Superseded(REGENERATED)
        raise Conflict("Your lease on this item expired and it was given to other annotators")


def submit_judgment(
    session: Session,
    *,
    project: Project,
    annotator: User,
    assignment_id: int,
    submit_key: str,
    data: JudgmentIn,
) -> tuple[Judgment, bool]:
    """Store the judgment for a lease; returns (judgment, created).

    Idempotent: a retry or double-click (same lease, or same submit key with the same answer) returns the stored
    judgment; a submit key reused for another lease or another answer is a 409. A lease that lapsed is honoured
    while the item still has room; otherwise 409, and nothing is lost on the client, which keeps the draft. A lease
    whose item was regenerated meanwhile is refused (``Superseded``, 409): it counts toward no round.
    """
    assignment = own_assignment(session, project=project, annotator=annotator, assignment_id=assignment_id)
    by_key, existing = repository.stored_judgments(session, assignment, submit_key)
    digest = submit_digest(data)
    if by_key is not None:
        return _replayed(by_key, assignment=assignment, digest=digest), False
    if existing is not None:
        return existing, False
    if assignment.status == "skipped":
        raise Conflict("You skipped this item")

    candidates = repository.current_candidates(session, assignment)
    if not candidates:
        raise Superseded(REGENERATED)
    _validate_verdicts(project, candidates, data.verdicts)
    if assignment.status == "expired":
        _retake_lapsed_lease(session, project=project, assignment=assignment)

    now = utcnow()
    seconds = data.seconds if data.seconds is not None else (now - assignment.leased_at).total_seconds()
    judgment = repository.insert_judgment(
        session,
        {
            "project_id": project.id,
            "item_id": assignment.item_id,
            "annotator_id": annotator.id,
            "assignment_id": assignment.id,
            "round": assignment.round,
            "reason": data.reason.strip(),
            "flag_all_bad": data.all_bad,
            "flag_problematic": data.problematic,
            "seconds": seconds,
            # Never more than the wall-clock time (a client's two clocks may disagree by a rounding step).
            "active_seconds": min(data.active_seconds, seconds) if data.active_seconds is not None else None,
            "submit_key": submit_key,
            "submit_digest": digest,
            "version": 1,
            "imported": False,
            "suggestion_shown": suggestion_was_shown(session, project=project, assignment=assignment),
            "created_at": now,
            "updated_at": now,
        },
    )
    if judgment is None:
        # A concurrent duplicate of this very submission won the race; return what it stored.
        winner = repository.judgment_of_lease(session, assignment)
        if winner is None:  # the key was taken meanwhile by another of this annotator's submissions
            raise Conflict("This submit key was already used")
        if winner.submit_key == submit_key:
            _replayed(winner, assignment=assignment, digest=digest)
        return winner, False
    _count_submitted(session, project=project, judgment=judgment, assignment=assignment, verdicts=data.verdicts)
    return judgment, True


def _count_submitted(
    session: Session, *, project: Project, judgment: Judgment, assignment: Assignment, verdicts: dict[str, VerdictIn]
) -> None:
    """Store a new judgment's verdicts and count it: its lease is submitted, its item and its annotator's tally
    have one judgment more; an item whose judgments reach its target disagreeing is reopened for one more."""
    session.add_all(_verdict_rows(judgment.id, verdicts))
    assignment.status = "submitted"
    counted = session.execute(  # RETURNING: the item as it is once its row is ours (see shift_gold_tallies)
        update(Item)
        .where(Item.id == assignment.item_id, Item.round == assignment.round)
        .values(judgment_count=Item.judgment_count + 1)
        .returning(Item.is_gold, Item.judgment_count, Item.target)
    ).first()
    if counted is None:
        # Cannot happen while regeneration expires the round's leases first (it waits for this lease's lock);
        # a plain Conflict, not Superseded: the insert above must be rolled back with the request.
        raise Conflict(REGENERATED)
    gold, judgments, target = counted
    count_judgment(session, project_id=judgment.project_id, annotator_id=judgment.annotator_id, gold=bool(gold))
    session.flush()
    if not gold:  # the item's row is locked by the update above until the request commits
        overlap.reopen_if_disputed(
            session,
            project=project,
            item_id=judgment.item_id,
            round_=judgment.round,
            judgments=judgments,
            target=target,
        )
    webhook_events.judgment_counted(session, project=project, judgments=judgments, target=target)


def get_own_judgment(session: Session, *, project: Project, annotator: User, judgment_id: int) -> Judgment:
    """One of the annotator's judgments in the project, else NotFound."""
    judgment = repository.own_judgment(
        session, project_id=project.id, annotator_id=annotator.id, judgment_id=judgment_id
    )
    if judgment is None:
        raise NotFound("No such judgment")
    return judgment


def assignment_of(session: Session, judgment: Judgment) -> Assignment:
    """The assignment a judgment was made for (its display order is the one the annotator saw)."""
    assignment = session.get(Assignment, judgment.assignment_id)
    assert assignment is not None
    return assignment


def edit_judgment(
    session: Session, *, project: Project, annotator: User, judgment_id: int, version: int, data: JudgmentIn
) -> Judgment:
    """Replace an own judgment's verdicts if ``version`` is still current; a stale edit is a 409."""
    judgment = get_own_judgment(session, project=project, annotator=annotator, judgment_id=judgment_id)
    assignment = assignment_of(session, judgment)
    _validate_verdicts(project, task_for(session, assignment).candidates, data.verdicts)
    bumped = session.execute(
        update(Judgment)
        .where(Judgment.id == judgment.id, Judgment.version == version)
        .values(
            version=Judgment.version + 1,
            reason=data.reason.strip(),
            flag_all_bad=data.all_bad,
            flag_problematic=data.problematic,
            updated_at=utcnow(),
        )
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        session.refresh(judgment)
        raise StaleEdit(
            f"This judgment was changed elsewhere (now version {judgment.version}, you edited version {version}); "
            "reload it to see the current answer"
        )
    for verdict in repository.verdict_rows_of(session, [judgment.id]):
        session.delete(verdict)
    session.flush()
    session.add_all(_verdict_rows(judgment.id, data.verdicts))
    session.flush()
    overlap.reopen_after_edit(session, project=project, item_id=judgment.item_id, round_=judgment.round)
    session.refresh(judgment)
    return judgment


def verdicts_of(session: Session, judgment_ids: list[int]) -> dict[int, dict[str, VerdictIn]]:
    """The verdicts of each judgment, by dimension."""
    out: dict[int, dict[str, VerdictIn]] = {j: {} for j in judgment_ids}
    if not judgment_ids:
        return out
    for verdict in repository.verdict_rows_of(session, judgment_ids):
        out[verdict.judgment_id][verdict.dimension] = stored_verdict(verdict)
    return out


def recent_judgments(session: Session, *, project: Project, annotator: User, limit: int = 50) -> list[Judgment]:
    """The annotator's most recently changed judgments in the project."""
    return repository.recent_judgments(session, project_id=project.id, annotator_id=annotator.id, limit=limit)


def items_of(session: Session, judgments: list[Judgment]) -> dict[int, Item]:
    """The items of these judgments, by id (one query, for a list of them)."""
    return repository.items_by_id(session, sorted({judgment.item_id for judgment in judgments}))


def stored_verdict(verdict: Verdict) -> VerdictIn:
    """A verdict row as the API shows it."""
    ranking = verdict.ranking or {}
    return VerdictIn(
        kind=verdict.kind,
        chosen=verdict.chosen_candidate_id,
        rejected=verdict.rejected_candidate_id,
        strength=verdict.strength,
        ranking=ranking.get("tiers"),
        much=ranking.get("much") if verdict.kind == "ranking" else None,
    )
