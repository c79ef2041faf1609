"""JSON: judge settings, judge jobs, and an item's suggestions with their provenance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.auth.deps import AdminUser
from app.generation.schemas import JobOut
from app.judge import service
from app.judge.schemas import JudgeHealthOut, JudgeJobIn, SuggestionOut
from app.kit.schemas import RowId, error_responses
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["judge"])


@router.get("/projects/{project}/judge/settings")
def get_settings(project: AdminProjectDep) -> dict[str, Any]:
    """The project's judges (keys masked), rubric, its prompt version and the built-in rubric."""
    return service.settings_of(project).public()


@router.put("/projects/{project}/judge/settings", responses=error_responses(422))
def put_settings(
    body: dict[str, Any], project: AdminProjectDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Replace the judge settings. A judge's missing or masked ``api_key`` keeps its stored key while its server
    stays the same; ``null`` removes it."""
    allow_private = bool(settings.allow_private_model_servers)
    return service.update_settings(session, project=project, data=body, allow_private=allow_private).public()


@router.get("/projects/{project}/judge/health", response_model=list[JudgeHealthOut])
def health(project: AdminProjectDep, settings: SettingsDep) -> list[JudgeHealthOut]:
    """Is each judge's server up, does it serve the judge's model, and with what context length."""
    return service.health(service.settings_of(project), allow_private=bool(settings.allow_private_model_servers))


@router.post("/projects/{project}/judge/jobs", response_model=JobOut, status_code=201, responses=error_responses(409))
def start(body: JudgeJobIn, project: AdminProjectDep, session: SessionDep, user: AdminUser) -> JobOut:
    """Queue a judge job over the ready items (every judge, or the one named); 409 when no judge is configured."""
    return JobOut.model_validate(service.start_job(session, project=project, request=body, user_id=user.id))


@router.get("/projects/{project}/items/{item_id}/suggestions", response_model=list[SuggestionOut])
def suggestions(item_id: RowId, project: AdminProjectDep, session: SessionDep) -> list[SuggestionOut]:
    """The judges' suggestions on an item, every round, with provenance (never human judgments)."""
    rows = service.item_suggestions(session, project=project, item_id=item_id)
    return [SuggestionOut.model_validate(r) for r in rows]
