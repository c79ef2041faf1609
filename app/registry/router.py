"""HTML: a project's model registry — its models, their lineage and serving endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.deps import AdminUser
from app.kit.errors import Invalid
from app.kit.forms import FormModel, form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.models import Project
from app.projects.deps import AdminProjectDep
from app.registry import repository, service
from app.registry.schemas import ModelHealthOut, ModelIn, ModelUpdate
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["model registry pages"], include_in_schema=False)


class AddForm(FormModel):
    """A model added by hand; blank fields are not set."""

    name: str = ""
    kind: str = "other"
    uri: str = ""
    parent_id: str = ""
    snapshot_id: str = ""
    weights_sha256: str = ""
    base_url: str = ""
    served_name: str = ""


class BindForm(FormModel):
    """A model's name and endpoint as the row's form shows them; both endpoint fields blank unbinds."""

    name: str = ""
    base_url: str = ""
    served_name: str = ""


def _validated(schema: type[ModelIn] | type[ModelUpdate], data: dict[str, Any]) -> Any:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise Invalid([{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from exc


def _context(request: Request, session: SessionDep, project: Project, **extra: Any) -> dict[str, Any]:
    models = service.list_models(session, project=project)
    return {
        "request": request,
        "project": project,
        "rows": service.lineage_rows(models),
        "snapshots": repository.ready_snapshots(session, project),
        "reward_accuracy": service.reward_accuracy,
        "health": {},
        **extra,
    }


@router.get("/projects/{project}/models")
def page(request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """The registry: models with lineage, endpoints and health; forms to add, bind and delete."""
    return render(request, "registry/page.html", _context(request, session, project))


@router.get("/projects/{project}/models/{model_id}/health")
def health_fragment(
    model_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Ask one model's endpoint now (the page loads this for each bound model)."""
    model = service.get_model(session, project=project, model_id=model_id)
    found: ModelHealthOut = service.health(model, allow_private=bool(settings.allow_private_model_servers))
    context = _context(request, session, project, health={model.id: found}, model_id=model.id, h=found)
    return render(request, "registry/page.html", context, fragment="registry/_health.html")


@router.post("/projects/{project}/models")
def add(
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    user: AdminUser,
    settings: SettingsDep,
    form: Annotated[AddForm, form_of(AddForm)],
) -> Response:
    """Register a model by hand."""
    data = {k: v.strip() for k, v in form.model_dump().items() if v.strip()}
    for key in ("parent_id", "snapshot_id"):
        if key in data and not data[key].isdigit():
            raise Invalid([{"loc": [key], "msg": "not a number"}])
    model_in = _validated(ModelIn, data)
    allow_private = bool(settings.allow_private_model_servers)
    service.add_model(session, project=project, data=model_in, user_id=user.id, allow_private=allow_private)
    return redirect(request, f"/projects/{project.slug}/models")


@router.post("/projects/{project}/models/{model_id}/bind")
def bind(
    model_id: RowId,
    request: Request,
    project: AdminProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[BindForm, form_of(BindForm)],
) -> Response:
    """Rename a model and set (or clear) its serving endpoint."""
    data: dict[str, Any] = {"base_url": form.base_url.strip() or None, "served_name": form.served_name.strip() or None}
    if form.name.strip():
        data["name"] = form.name.strip()
    update = _validated(ModelUpdate, data)
    allow_private = bool(settings.allow_private_model_servers)
    service.update_model(session, project=project, model_id=model_id, data=update, allow_private=allow_private)
    return redirect(request, f"/projects/{project.slug}/models")


@router.post("/projects/{project}/models/{model_id}/delete")
def delete(model_id: RowId, request: Request, project: AdminProjectDep, session: SessionDep) -> Response:
    """Delete a model (refused while an arena lists it)."""
    service.delete_model(session, project=project, model_id=model_id)
    return redirect(request, f"/projects/{project.slug}/models")
