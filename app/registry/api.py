"""JSON: a project's model registry. Reading and registering: an admin or the project's export token (the training
worker registers its checkpoints); renaming, binding an endpoint, deleting and health checks: admins only."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.export.deps import ExportAccessDep, project_for_export
from app.kit.errors import Forbidden
from app.kit.schemas import RowId, error_responses
from app.projects.deps import AdminProjectDep
from app.registry import service
from app.registry.schemas import ModelHealthOut, ModelIn, ModelOut, ModelUpdate
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["models"])


@router.get("/projects/{project}/models", response_model=list[ModelOut])
def list_models(project: str, access: ExportAccessDep, session: SessionDep) -> list[ModelOut]:
    """The project's registered models, oldest first, each with its parent's name and its children's ids."""
    found = project_for_export(session, slug=project, access=access)
    return service.list_models(session, project=found)


@router.post("/projects/{project}/models", response_model=ModelOut, status_code=201, responses=error_responses(409))
def add_model(
    project: str, body: ModelIn, access: ExportAccessDep, session: SessionDep, settings: SettingsDep
) -> ModelOut:
    """Register a model (409 if the name is taken). Without ``weights_sha256`` the weights are hashed when ``uri``
    is a directory this server can read. Binding an endpoint (``base_url``, ``served_name``) is for admins."""
    found = project_for_export(session, slug=project, access=access)
    if not access.is_admin and (body.base_url or body.served_name):
        raise Forbidden("Only an admin binds a model to a serving endpoint")
    user_id = access.user_id if access.is_admin else (access.token.user_id if access.token else None)
    allow_private = bool(settings.allow_private_model_servers)
    model = service.add_model(session, project=found, data=body, user_id=user_id, allow_private=allow_private)
    return service.one_model(session, project=found, model_id=model.id)


@router.get("/projects/{project}/models/{model_id}", response_model=ModelOut)
def get_model(project: str, model_id: RowId, access: ExportAccessDep, session: SessionDep) -> ModelOut:
    """One registered model with its lineage."""
    found = project_for_export(session, slug=project, access=access)
    return service.one_model(session, project=found, model_id=model_id)


@router.patch("/projects/{project}/models/{model_id}", response_model=ModelOut, responses=error_responses(409))
def update_model(
    model_id: RowId, body: ModelUpdate, project: AdminProjectDep, session: SessionDep, settings: SettingsDep
) -> ModelOut:
    """Rename a model, or bind it to a serving endpoint (``base_url`` and ``served_name``; both null unbinds)."""
    allow_private = bool(settings.allow_private_model_servers)
    service.update_model(session, project=project, model_id=model_id, data=body, allow_private=allow_private)
    return service.one_model(session, project=project, model_id=model_id)


@router.delete("/projects/{project}/models/{model_id}", status_code=204, responses=error_responses(409))
def delete_model(model_id: RowId, project: AdminProjectDep, session: SessionDep) -> Response:
    """Delete a model (409 while an arena lists it). Candidates it wrote keep their weights hash."""
    service.delete_model(session, project=project, model_id=model_id)
    return Response(status_code=204)


@router.get("/projects/{project}/models/{model_id}/health", response_model=ModelHealthOut)
def model_health(
    model_id: RowId, project: AdminProjectDep, session: SessionDep, settings: SettingsDep
) -> ModelHealthOut:
    """Is the model's endpoint up and does it serve the model's name (``bound`` false: no endpoint to ask)."""
    model = service.get_model(session, project=project, model_id=model_id)
    return service.health(model, allow_private=bool(settings.allow_private_model_servers))
