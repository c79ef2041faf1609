"""JSON: projects, their counts and members."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from app.auth.deps import AdminUser, CurrentUser
from app.kit.schemas import RowId, error_responses
from app.projects import service
from app.projects.deps import AdminProjectDep, ProjectDep
from app.projects.schemas import CountsOut, MemberIn, MemberOut, ProjectIn, ProjectOut, ProjectPatch
from app.web.deps import SessionDep

router = APIRouter(tags=["projects"])


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(session: SessionDep, user: CurrentUser) -> list[ProjectOut]:
    """Projects I can see (admins: all)."""
    return [ProjectOut.model_validate(p) for p in service.list_projects(session, user=user)]


@router.post("/projects", response_model=ProjectOut, status_code=201, responses=error_responses(409))
def create_project(body: ProjectIn, session: SessionDep, admin: AdminUser) -> ProjectOut:
    """Create a project (the creator becomes a member)."""
    project = service.create_project(session, data=body)
    service.add_member(session, project=project, username=admin.username)
    return ProjectOut.model_validate(project)


@router.get("/projects/{project}", response_model=ProjectOut)
def get_project(project: ProjectDep) -> ProjectOut:
    """One project."""
    return ProjectOut.model_validate(project)


@router.patch("/projects/{project}", response_model=ProjectOut, responses=error_responses(409))
def patch_project(body: ProjectPatch, project: AdminProjectDep, session: SessionDep) -> ProjectOut:
    """Change a project's settings (k is fixed once items have candidates)."""
    return ProjectOut.model_validate(service.update_project(session, project=project, data=body))


@router.get("/projects/{project}/counts", response_model=CountsOut)
def counts(project: AdminProjectDep, session: SessionDep) -> CountsOut:
    """Items, items with candidates, fully judged items, judgments, members."""
    return CountsOut(**service.counts(session, project=project).__dict__)


@router.get("/projects/{project}/members", response_model=list[MemberOut])
def members(project: AdminProjectDep, session: SessionDep) -> list[MemberOut]:
    """Members with their judgment counts."""
    return [MemberOut(**m) for m in service.members(session, project=project)]


@router.post("/projects/{project}/members", response_model=MemberOut, status_code=201)
def add_member(body: MemberIn, project: AdminProjectDep, session: SessionDep) -> MemberOut:
    """Add a member by username."""
    user = service.add_member(session, project=project, username=body.username)
    return MemberOut(
        user_id=user.id, username=user.username, display_name=user.display_name, role=user.role, judgments=0
    )


@router.delete("/projects/{project}/members/{user_id}", status_code=204)
def remove_member(user_id: RowId, project: AdminProjectDep, session: SessionDep) -> Response:
    """Remove a member (their judgments stay)."""
    service.remove_member(session, project=project, user_id=user_id)
    return Response(status_code=204)


class PauseIn(BaseModel):
    paused: bool


@router.post("/projects/{project}/members/{user_id}/pause", status_code=204)
def pause_member(user_id: RowId, body: PauseIn, project: AdminProjectDep, session: SessionDep) -> Response:
    """Pause an annotator (no new items in this project) or resume them."""
    service.set_paused(session, project=project, user_id=user_id, paused=body.paused)
    return Response(status_code=204)
