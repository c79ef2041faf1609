"""HTML: one item with its candidates, its full history and its gold answer (the list is the explorer); the import
of judgments made elsewhere, and of files in other tools' formats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.auth.deps import CurrentUser
from app.explorer.history import history
from app.explorer.router import router as explorer_router
from app.items import service
from app.items.formats.registry import DEFAULT_ANNOTATOR, FORMATS, NATIVE
from app.items.formats.service import import_file_as
from app.items.importer import ImportFailed
from app.items.judgments import import_judgments
from app.items.schemas import GoldForm
from app.kit.bodylimit import allow_upload
from app.kit.errors import Invalid
from app.kit.forms import form_file, form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.models import OVERALL, ImportBatch, Project
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["item pages"], include_in_schema=False)
router.include_router(explorer_router)  # the item list is the data explorer


def gold_choices(project: Project) -> list[tuple[str, str]]:
    """The expected answers a gold form offers, as (value, label): "either", "tie" and every best/worst pair."""
    choices = [("either", "either (not checked)"), ("tie", "tie")]
    for best in range(project.k):
        for worst in range(project.k):
            if best != worst:
                label = (
                    f"candidate {best + 1} better"
                    if project.k == 2
                    else f"best: candidate {best + 1}, worst: candidate {worst + 1}"
                )
                choices.append((f"preference:{best}:{worst}", label))
    return choices


def _gold_value(answer: dict[str, object] | None) -> str:
    if not answer:
        return "either"
    if answer.get("kind") == "preference":
        return f"preference:{answer['chosen']}:{answer['rejected']}"
    return str(answer.get("kind"))


def _expected_from_form(project: Project, form: GoldForm) -> dict[str, dict[str, object]]:
    """``gold_<dimension>`` fields ("either", "tie", "preference:<best>:<worst>") → the service's expected dict."""
    allowed = {value for value, _ in gold_choices(project)}
    expected: dict[str, dict[str, object]] = {}
    posted = form.fields()
    for dim in [OVERALL, *project.dimension_keys]:
        value = posted.get(f"gold_{dim}", "either" if dim != OVERALL else "")
        if value not in allowed:
            raise Invalid(f"{dim}: choose an expected answer")
        if value.startswith("preference:"):
            _, best, worst = value.split(":")
            expected[dim] = {"kind": "preference", "chosen": int(best), "rejected": int(worst)}
        else:
            expected[dim] = {"kind": value}
    return expected


@router.get("/projects/{project}/items/{item_id}")
def item_page(item_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """One item: its prompt, every round of candidates with their generation parameters, every judgment with its
    votes, every skip, the adjudication history, and its gold answer."""
    item, candidates = service.get_item(session, project=project, item_id=item_id)
    labels = {d["key"]: d.get("label", d["key"]) for d in project.dimensions}
    gold = [
        (dim, "Overall" if dim == OVERALL else labels.get(dim, dim), _gold_value((item.gold or {}).get(dim)))
        for dim in [OVERALL, *project.dimension_keys]
    ]
    return render(
        request,
        "items/detail.html",
        {
            "request": request,
            "project": project,
            "item": item,
            "candidates": candidates,
            "gold": gold,
            "gold_choices": gold_choices(project),
            "history": history(session, item=item, candidates=candidates),
            "batch": session.get(ImportBatch, item.import_batch_id) if item.import_batch_id else None,
            "dimensions": [(OVERALL, "Overall"), *((d, labels.get(d, d)) for d in project.dimension_keys)],
        },
    )


@router.post("/projects/{project}/items/{item_id}/gold")
def mark_gold(
    item_id: RowId,
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    form: Annotated[GoldForm, form_of(GoldForm)],
) -> Response:
    """Make the item gold with the expected answer on each dimension (candidate numbers are canonical)."""
    service.set_gold(session, project=project, item_id=item_id, expected=_expected_from_form(project, form))
    return redirect(request, f"/projects/{project.slug}/items/{item_id}")


@router.post("/projects/{project}/items/{item_id}/gold/remove")
def unmark_gold(item_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Make a gold item an ordinary one again."""
    service.set_gold(session, project=project, item_id=item_id, expected=None)
    return redirect(request, f"/projects/{project.slug}/items/{item_id}")


IMPORT_OPTIONS = ("dry_run", "skip_existing", "as_members")


@router.get("/projects/{project}/judgments/import")
def import_judgments_page(request: Request, project: AdminProjectDep) -> Response:
    """The form that imports judgments from earlier annotation rounds (JSONL)."""
    return render(request, "items/import_judgments.html", {"request": request, "project": project, "options": {}})


async def _judgments_upload(request: Request, project: AdminProjectDep) -> tuple[UploadFile | None, dict[str, bool]]:
    """The uploaded file and the ticked options, read once the caller is known to be an admin of the project."""
    allow_upload(request)
    upload = await form_file(request)
    form = await request.form()
    return upload, {option: form.get(option) == "1" for option in IMPORT_OPTIONS}


@router.post("/projects/{project}/judgments/import")
def import_judgments_upload(
    request: Request,
    posted: Annotated[tuple[UploadFile | None, dict[str, bool]], Depends(_judgments_upload)],
    project: AdminProjectDep,
    session: SessionDep,
) -> Response:
    """Import a JSONL file of judgments; the result, or every bad line, shows on the same page."""
    upload, options = posted
    if upload is None:
        raise Invalid("Choose a file to import")
    context = {"request": request, "project": project, "options": options}
    try:
        result = import_judgments(
            session,
            project=project,
            stream=upload.file,
            dry_run=options["dry_run"],
            skip_existing=options["skip_existing"],
            as_members=options["as_members"],
        )
    except ImportFailed as exc:
        session.rollback()  # nothing of a failed import stays
        return render(request, "items/import_judgments.html", {**context, "error": exc.detail}, status_code=422)
    return render(request, "items/import_judgments.html", {**context, "result": result})


def _formats_page(request: Request, project: Project, options: dict[str, str], **extra: object) -> Response:
    formats = [(f, DEFAULT_ANNOTATOR.get(f, "")) for f in FORMATS]
    context = {"request": request, "project": project, "options": options, "formats": formats, **extra}
    status = 422 if "error" in extra else 200
    return render(request, "items/import_formats.html", context, status_code=status)


@router.get("/projects/{project}/import/formats")
def import_formats_page(request: Request, project: AdminProjectDep) -> Response:
    """The form that imports items from a file of ours or of another tool (with its judgments)."""
    return _formats_page(request, project, {"format": NATIVE, "annotator": ""})


async def _format_upload(request: Request, project: AdminProjectDep) -> tuple[UploadFile | None, dict[str, str]]:
    """The uploaded file, its format and annotator name, read once the caller is known to be an admin."""
    allow_upload(request)
    upload = await form_file(request)
    form = await request.form()
    return upload, {"format": str(form.get("format") or NATIVE), "annotator": str(form.get("annotator") or "").strip()}


@router.post("/projects/{project}/import/formats")
def import_formats_upload(
    request: Request,
    posted: Annotated[tuple[UploadFile | None, dict[str, str]], Depends(_format_upload)],
    project: AdminProjectDep,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """Import a file in the chosen format; the result, or every bad line, shows on the same page."""
    upload, options = posted
    if upload is None or not upload.filename:
        raise Invalid("Choose a file to import")
    fmt = options["format"]
    if fmt not in FORMATS:
        raise Invalid("Choose one of the formats")
    try:
        result = import_file_as(
            session,
            project=project,
            stream=upload.file,
            filename=upload.filename,
            fmt=fmt,
            annotator=options["annotator"] or None,
            created_by=user,
        )
    except ImportFailed as exc:
        session.rollback()  # nothing of a failed import stays
        return _formats_page(request, project, options, error=exc.detail)
    return _formats_page(request, project, options, result=result)
