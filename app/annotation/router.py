"""HTML: the annotation page (htmx swaps the next item in after each submit) and my judgments."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.annotation import judgments, queue, repository, skips, suggestions
from app.annotation.diff import near_duplicates
from app.annotation.dimensions import LETTERS, shown_dimensions
from app.annotation.progress import progress
from app.annotation.schemas import EditForm, JudgmentIn, SkipForm, SubmitForm, letters_from_verdicts
from app.annotation.summaries import summaries, verdict_summary
from app.auth.deps import CurrentUser
from app.i18n import gettext
from app.kit.errors import Invalid, NotFound
from app.kit.forms import form_of
from app.kit.htmx import is_htmx, redirect, render
from app.kit.schemas import MAX_ROW_ID, RowId
from app.models import Judgment, Project, User
from app.projects.deps import ProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["annotation pages"], include_in_schema=False)


def _dimensions(project: Project) -> list[dict[str, Any]]:
    question = gettext("Which answer is better as a whole?")
    return shown_dimensions(project, overall_label=gettext("Overall"), overall_question=question)


def _suggested_context(session: SessionDep, project: Project, task: queue.Task | None) -> dict[str, Any]:
    """In mode "shown", a new lease's suggestions per row and its form with every suggested choice pre-selected."""
    if task is None or project.suggestions != suggestions.SHOWN:
        return {}
    found = suggestions.shown_before_submit(session, project=project, assignment=task.assignment)
    ranks = project.ranking_mode == "rank" and len(task.candidates) > 2
    rows = suggestions.page_suggestions(found, display_order=[c.id for c in task.candidates], ranks=ranks)
    return {"suggested": rows, "values": suggestions.prefilled_values(rows)}


def _feedback(session: SessionDep, project: Project, judgment: Judgment) -> list[dict[str, Any]]:
    """In mode "after", the judge's suggestions beside the answer just stored (no rows in any other mode)."""
    if project.suggestions != suggestions.AFTER:
        return []
    found = suggestions.suggestions_for(session, project=project, item_id=judgment.item_id, round_=judgment.round)
    if not found:
        return []
    verdicts = judgments.verdicts_of(session, [judgment.id])[judgment.id]
    order = judgments.assignment_of(session, judgment).display_order
    return suggestions.feedback_rows(found, verdicts, display_order=order, dimensions=_dimensions(project))


def _panel_context(
    request: Request,
    session: SessionDep,
    project: Project,
    user: User,
    task: queue.Task | None,
    **extra: Any,
) -> dict[str, Any]:
    fresh = _suggested_context(session, project, task) if extra.get("mode", "new") == "new" else {}
    return {
        "request": request,
        "project": project,
        "task": task,
        "near": near_duplicates([c.text for c in task.candidates]) if task else [],
        "letters": LETTERS,
        "dimensions": _dimensions(project),
        "progress": progress(session, project=project, annotator=user),
        "submit_key": uuid.uuid4().hex,
        "values": {},
        "mode": "new",
        "notice": None,
        "suggested": {},
        "feedback": [],
        **fresh,
        **extra,
    }


def _panel(
    request: Request, session: SessionDep, project: Project, user: User, task: queue.Task | None, **extra: Any
) -> Response:
    context = _panel_context(request, session, project, user, task, **extra)
    return render(request, "annotation/page.html", context, fragment="annotation/_panel.html")


def _own_feedback(session: SessionDep, project: Project, user: User, judgment_id: int | None) -> list[dict[str, Any]]:
    """The feedback on one of my judgments (a plain form's submit lands here with its id); none for another's."""
    if judgment_id is None or project.suggestions != suggestions.AFTER:
        return []
    try:
        judgment = judgments.get_own_judgment(session, project=project, annotator=user, judgment_id=judgment_id)
    except NotFound:
        return []
    return _feedback(session, project, judgment)


@router.get("/projects/{project}/annotate")
def annotate_page(
    request: Request,
    project: ProjectDep,
    session: SessionDep,
    user: CurrentUser,
    regenerated: bool = False,
    judged: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    """The annotation page: the open lease, or a placeholder that asks for the next item; ``judged``: the
    judgment just submitted, to show the judge's suggestions beside it (mode "after")."""
    task = queue.current_task(session, project=project, annotator=user)
    notice = gettext(judgments.REGENERATED) if regenerated else None
    feedback = _own_feedback(session, project, user, judged)
    context = _panel_context(
        request, session, project, user, task, claim=task is None, notice=notice, feedback=feedback
    )
    return render(request, "annotation/page.html", context)


@router.post("/projects/{project}/annotate/next")
def claim_next(request: Request, project: ProjectDep, session: SessionDep, user: CurrentUser) -> Response:
    """Lease the next item and show it."""
    task = queue.assign_next_item(session, project=project, annotator=user)
    if not is_htmx(request):
        return redirect(request, f"/projects/{project.slug}/annotate")
    return _panel(request, session, project, user, task)


@router.post("/projects/{project}/annotate/{assignment_id}")
def submit(
    assignment_id: RowId,
    request: Request,
    form: Annotated[SubmitForm, form_of(SubmitForm)],
    project: ProjectDep,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """Submit the judgment of a lease, then show the next item."""
    shown = queue.display_order_of(session, project=project, annotator=user, assignment_id=assignment_id)
    data = form.judgment(project=project, display_order=shown)
    try:
        judgment, _ = judgments.submit_judgment(
            session,
            project=project,
            annotator=user,
            assignment_id=assignment_id,
            submit_key=form.submit_key or uuid.uuid4().hex,
            data=data,
        )
    except judgments.Superseded:
        # Nothing was written: say why the answer is gone and go on to the next item (the new candidates, often).
        if not is_htmx(request):
            return redirect(request, f"/projects/{project.slug}/annotate?regenerated=1")
        task = queue.assign_next_item(session, project=project, annotator=user)
        return _panel(request, session, project, user, task, notice=gettext(judgments.REGENERATED))
    if not is_htmx(request):
        judged = f"?judged={judgment.id}" if project.suggestions == suggestions.AFTER else ""
        return redirect(request, f"/projects/{project.slug}/annotate{judged}")
    feedback = _feedback(session, project, judgment)
    task = queue.assign_next_item(session, project=project, annotator=user)
    return _panel(request, session, project, user, task, saved=True, feedback=feedback)


@router.post("/projects/{project}/annotate/{assignment_id}/skip")
def skip(
    assignment_id: RowId,
    request: Request,
    form: Annotated[SkipForm, form_of(SkipForm)],
    project: ProjectDep,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """Skip the leased item (with a reason) and show the next one."""
    queue.skip_assignment(
        session, project=project, annotator=user, assignment_id=assignment_id, reason=form.skip_reason
    )
    if not is_htmx(request):
        return redirect(request, f"/projects/{project.slug}/annotate")
    task = queue.assign_next_item(session, project=project, annotator=user)
    return _panel(request, session, project, user, task)


@router.get("/projects/{project}/judgments")
def my_judgments(
    request: Request, project: ProjectDep, session: SessionDep, user: CurrentUser, saved: int | None = None
) -> Response:
    """My recent judgments (each reopenable for editing, with a one-line summary) and my skipped items (each
    reopenable for judging). ``saved``: the judgment an edit just saved (its draft on the page is done with)."""
    recent = judgments.recent_judgments(session, project=project, annotator=user)
    skipped = skips.skipped(session, project=project, annotator=user)
    items = judgments.items_of(session, recent) | repository.items_by_id(session, [a.item_id for a in skipped])
    context = {
        "request": request,
        "project": project,
        "judgments": recent,
        "summaries": summaries(session, recent, _dimensions(project)),
        "skipped": skipped,
        "items": items,
        "saved": next((j for j in recent if j.id == saved), None),
    }
    return render(request, "annotation/judgments.html", context)


@router.post("/projects/{project}/skipped/{assignment_id}/reopen")
def reopen_skipped(
    assignment_id: RowId, request: Request, project: ProjectDep, session: SessionDep, user: CurrentUser
) -> Response:
    """Take a skipped item back: it becomes my lease and the annotation page shows it."""
    skips.reopen_skipped(session, project=project, annotator=user, assignment_id=assignment_id)
    return redirect(request, f"/projects/{project.slug}/annotate")


def _edit_context(
    request: Request, session: SessionDep, project: Project, user: User, judgment_id: int, **extra: Any
) -> dict[str, Any]:
    judgment = judgments.get_own_judgment(session, project=project, annotator=user, judgment_id=judgment_id)
    task = queue.task_for(session, judgments.assignment_of(session, judgment))
    verdicts = judgments.verdicts_of(session, [judgment.id])[judgment.id]
    values = letters_from_verdicts(verdicts, [c.id for c in task.candidates])
    values.update(
        reason=judgment.reason,
        all_bad="1" if judgment.flag_all_bad else "",
        problematic="1" if judgment.flag_problematic else "",
    )
    return _panel_context(request, session, project, user, task, mode="edit", judgment=judgment, values=values, **extra)


@router.get("/projects/{project}/judgments/{judgment_id}")
def edit_page(
    judgment_id: RowId, request: Request, project: ProjectDep, session: SessionDep, user: CurrentUser
) -> Response:
    """Reopen one of my judgments."""
    context = _edit_context(request, session, project, user, judgment_id)
    return render(request, "annotation/page.html", context, fragment="annotation/_panel.html")


@router.post("/projects/{project}/judgments/{judgment_id}")
def edit(
    judgment_id: RowId,
    request: Request,
    form: Annotated[EditForm, form_of(EditForm)],
    project: ProjectDep,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """Save an edit. A stale version (changed elsewhere meanwhile) stores nothing: the edit comes back on the page
    (409) beside the stored version, to be applied over it or discarded."""
    judgment = judgments.get_own_judgment(session, project=project, annotator=user, judgment_id=judgment_id)
    assignment = judgments.assignment_of(session, judgment)
    if form.version is None:
        raise Invalid("version is missing")
    data = form.judgment(project=project, display_order=assignment.display_order)
    try:
        judgments.edit_judgment(
            session, project=project, annotator=user, judgment_id=judgment_id, version=form.version, data=data
        )
    except judgments.StaleEdit:
        context = _conflict_context(request, session, project, user, judgment_id, form, data)
        return render(request, "annotation/page.html", context, status_code=409)
    return redirect(request, f"/projects/{project.slug}/judgments?saved={judgment_id}")


def _conflict_context(
    request: Request,
    session: SessionDep,
    project: Project,
    user: User,
    judgment_id: int,
    form: EditForm,
    data: JudgmentIn,
) -> dict[str, Any]:
    """The edit page with the user's edit as posted (its version now the stored one, so that sending it again
    applies it over) and the stored version to show beside it."""
    context = _edit_context(request, session, project, user, judgment_id)
    stored, order, dims = context["values"], [c.id for c in context["task"].candidates], context["dimensions"]
    verdicts = judgments.verdicts_of(session, [judgment_id])[judgment_id]
    flags = {"all_bad": "1" if form.all_bad else "", "problematic": "1" if form.problematic else ""}
    context.update(
        values={**form.fields(), "reason": form.reason, **flags},
        conflict={
            "edited_version": form.version,
            "stored_summary": verdict_summary(verdicts, order, dims),
            "stored_reason": stored.get("reason", ""),
            "stored_all_bad": bool(stored.get("all_bad")),
            "stored_problematic": bool(stored.get("problematic")),
            "mine_summary": verdict_summary(data.verdicts, order, dims),
        },
    )
    return context
