"""JSON: the annotator's next item, submitting, skipping and editing judgments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.annotation import judgments, queue, repository, skips, suggestions
from app.annotation.dimensions import LETTERS, localized
from app.annotation.progress import Progress, progress
from app.annotation.schemas import (
    AssignmentOut,
    CandidateOut,
    DimensionOut,
    EditIn,
    JudgmentOut,
    NextOut,
    ProgressOut,
    SkipIn,
    SkippedOut,
    SubmitIn,
    VerdictIn,
)
from app.auth.deps import CurrentUser
from app.kit.schemas import RowId, error_responses, json_out
from app.models import Judgment, Project
from app.projects.deps import ProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["annotation"])


def _progress_out(counted: Progress) -> ProgressOut:
    return ProgressOut(**counted.__dict__)


def _dimension_out(dimension: dict[str, Any]) -> DimensionOut:
    """A dimension in the request's language (else the project's own text), and whether it must be answered."""
    label, description = localized(dimension)
    return DimensionOut(
        key=dimension["key"], label=label, description=description, required=dimension.get("required", True)
    )


def assignment_out(
    task: queue.Task, project: Project, counted: Progress, shown: dict[str, suggestions.Suggested] | None = None
) -> AssignmentOut:
    """``shown``: the judge's suggestions, when the project shows them before the answer."""
    return AssignmentOut(
        assignment_id=task.assignment.id,
        item_id=task.item.id,
        external_id=task.item.external_id,
        prompt=task.item.prompt,
        candidates=[
            # An arena is blind: the model that wrote a candidate is never shown to its annotators.
            CandidateOut(
                id=c.id,
                label=LETTERS[i],
                text=c.text,
                model=None if project.kind == "arena" else c.model,
                finish_reason=c.finish_reason,
            )
            for i, c in enumerate(task.candidates)
        ],
        dimensions=[DimensionOut(key="overall", label="Overall")] + [_dimension_out(d) for d in project.dimensions],
        lease_expires_at=task.assignment.lease_expires_at,
        progress=_progress_out(counted),
        suggestions=suggestions.suggestions_out(shown or {}) if project.suggestions == suggestions.SHOWN else None,
    )


def _leased_out(session: SessionDep, task: queue.Task, project: Project, counted: Progress) -> AssignmentOut:
    shown = suggestions.shown_before_submit(session, project=project, assignment=task.assignment)
    return assignment_out(task, project, counted, shown)


def judgment_out(session: SessionDep, judgment: Judgment, verdicts: dict[str, VerdictIn] | None = None) -> JudgmentOut:
    """``verdicts``: the judgment's, when the caller has them (a judgment just stored); else they are read."""
    return JudgmentOut(
        id=judgment.id,
        item_id=judgment.item_id,
        assignment_id=judgment.assignment_id,
        annotator_id=judgment.annotator_id,
        verdicts=verdicts if verdicts is not None else judgments.verdicts_of(session, [judgment.id])[judgment.id],
        reason=judgment.reason,
        all_bad=judgment.flag_all_bad,
        problematic=judgment.flag_problematic,
        seconds=judgment.seconds,
        active_seconds=judgment.active_seconds,
        version=judgment.version,
        created_at=judgment.created_at,
        updated_at=judgment.updated_at,
        suggestion_shown=judgment.suggestion_shown,
    )


@router.post("/projects/{project}/next", response_model=NextOut)
def next_item(project: ProjectDep, session: SessionDep, user: CurrentUser) -> Response:
    """Lease the next item to judge (or return the open lease); ``assignment`` is null when none is left."""
    task = queue.assign_next_item(session, project=project, annotator=user)
    counted = progress(session, project=project, annotator=user)
    if task is None:
        return json_out(NextOut(assignment=None, progress=_progress_out(counted), detail="Nothing left to judge"))
    return json_out(NextOut(assignment=_leased_out(session, task, project, counted), progress=_progress_out(counted)))


def _submitted_out(
    session: SessionDep, project: Project, judgment: Judgment, verdicts: dict[str, VerdictIn] | None = None
) -> JudgmentOut:
    """The stored judgment, with the judge's suggestions when the project shows them after the answer."""
    out = judgment_out(session, judgment, verdicts)
    if project.suggestions == suggestions.AFTER:
        found = suggestions.suggestions_for(session, project=project, item_id=judgment.item_id, round_=judgment.round)
        out.suggestions = suggestions.suggestions_out(found)
    return out


@router.post(
    "/projects/{project}/judgments",
    response_model=JudgmentOut,
    status_code=201,
    responses={
        200: {
            "model": JudgmentOut,
            "description": "A retry (same submit key and answer, or same lease): the judgment stored before",
        },
        **error_responses(409),
    },
)
def submit(body: SubmitIn, project: ProjectDep, session: SessionDep, user: CurrentUser) -> Response:
    """Submit a judgment for a lease; a retry (same ``submit_key`` and answer, or same lease) returns the stored
    judgment (200). 409: the key was used for another lease or answer, or the item was regenerated meanwhile.
    When the project shows suggestions after the answer, ``suggestions`` holds the judge's per dimension."""
    judgment, created = judgments.submit_judgment(
        session,
        project=project,
        annotator=user,
        assignment_id=body.assignment_id,
        submit_key=body.submit_key,
        data=body,
    )
    if not created:
        return json_out(_submitted_out(session, project, judgment))
    return json_out(
        _submitted_out(session, project, judgment, body.verdicts), status_code=201
    )  # as stored: not read back


@router.get("/projects/{project}/judgments", response_model=list[JudgmentOut])
def my_judgments(project: ProjectDep, session: SessionDep, user: CurrentUser, limit: int = 50) -> list[JudgmentOut]:
    """My most recent judgments in this project."""
    recent = judgments.recent_judgments(session, project=project, annotator=user, limit=max(1, min(limit, 500)))
    return [judgment_out(session, judgment) for judgment in recent]


@router.get("/projects/{project}/judgments/{judgment_id}", response_model=JudgmentOut)
def get_judgment(judgment_id: RowId, project: ProjectDep, session: SessionDep, user: CurrentUser) -> JudgmentOut:
    """One of my judgments."""
    return judgment_out(
        session, judgments.get_own_judgment(session, project=project, annotator=user, judgment_id=judgment_id)
    )


@router.put("/projects/{project}/judgments/{judgment_id}", response_model=JudgmentOut, responses=error_responses(409))
def edit(judgment_id: RowId, body: EditIn, project: ProjectDep, session: SessionDep, user: CurrentUser) -> JudgmentOut:
    """Edit one of my judgments; ``version`` must be the current one, else 409."""
    judgment = judgments.edit_judgment(
        session, project=project, annotator=user, judgment_id=judgment_id, version=body.version, data=body
    )
    return judgment_out(session, judgment)


@router.post("/projects/{project}/assignments/{assignment_id}/skip", status_code=204, responses=error_responses(409))
def skip(assignment_id: RowId, body: SkipIn, project: ProjectDep, session: SessionDep, user: CurrentUser) -> Response:
    """Skip a leased item (with an optional reason); it will not be offered to me again."""
    queue.skip_assignment(session, project=project, annotator=user, assignment_id=assignment_id, reason=body.reason)
    return Response(status_code=204)


@router.get("/projects/{project}/skipped", response_model=list[SkippedOut])
def my_skipped(project: ProjectDep, session: SessionDep, user: CurrentUser, limit: int = 50) -> list[SkippedOut]:
    """The items I skipped in this project, last skipped first, with my reasons."""
    skipped = skips.skipped(session, project=project, annotator=user, limit=max(1, min(limit, 500)))
    items = repository.items_by_id(session, [a.item_id for a in skipped])
    return [
        SkippedOut(
            assignment_id=a.id,
            item_id=a.item_id,
            external_id=items[a.item_id].external_id,
            reason=a.skip_reason or "",
            skipped_at=a.updated_at,
        )
        for a in skipped
    ]


@router.post(
    "/projects/{project}/assignments/{assignment_id}/reopen", response_model=NextOut, responses=error_responses(409)
)
def reopen(assignment_id: RowId, project: ProjectDep, session: SessionDep, user: CurrentUser) -> Response:
    """Re-open an item I skipped: it becomes my lease (same candidates, same order) while it still has room; a lease
    I held on another item goes back to the pool and is offered to me next. 409 when it cannot be re-opened."""
    assignment = skips.reopen_skipped(session, project=project, annotator=user, assignment_id=assignment_id)
    counted = progress(session, project=project, annotator=user)
    task = queue.task_for(session, assignment)
    return json_out(NextOut(assignment=_leased_out(session, task, project, counted), progress=_progress_out(counted)))
