"""Who may read a project's export: an ``export``-scope token of that project, or an admin.

Export tokens open nothing else; an export token of another project gets 403, a missing, wrong or revoked one
401. Admins come in by cookie (the pages' downloads) or by an ``api``-scope token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth
from app.auth.deps import Principal, get_principal, remember_principal
from app.kit.errors import Forbidden, NotAuthenticated, NotFound
from app.models import ApiToken, Project
from app.web.deps import SessionDep, get_database, get_settings_dep


@dataclass
class ExportAccess:
    """The caller of an export route: an export token (``token``) or an admin (``user_id``)."""

    token: ApiToken | None
    user_id: int | None

    @property
    def is_admin(self) -> bool:
        """An admin's session or api token (not an export token): may name annotators by username."""
        return self.token is None

    @property
    def caller(self) -> str:
        """Who is asking, for the per-caller limit of live exports."""
        return f"token:{self.token.id}" if self.token is not None else f"user:{self.user_id}"

    def check(self, project: Project | None) -> Project:
        """The project if this caller may read it. Tokens learn nothing about other projects (403 either way)."""
        if self.token is not None:
            if project is None or self.token.project_id != project.id:
                raise Forbidden("This token is not valid for this project")
            return project
        if project is None:
            raise NotFound("No such project")
        return project


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def get_export_access(request: Request, session: SessionDep) -> ExportAccess:
    plain = _bearer(request)
    principal: Principal | None
    if plain is not None:
        # One lookup for either scope, off the event loop (see get_principal).
        row = await run_in_threadpool(
            auth.use_api_token,
            session,
            token=plain,
            settings=get_settings_dep(request),
            db=get_database(request),
            scopes=("export", "api"),
        )
        if row is None:
            raise NotAuthenticated("Invalid or revoked token")
        token, user = row
        if token.scope == "export":
            request.state.export_token_owner = token.user_id  # for the request's log line (app.ops.requests)
            return ExportAccess(token=token, user_id=None)
        principal = remember_principal(request, Principal(user=user, via="token"))
    else:
        principal = await get_principal(request, session)  # a cookie session
    if principal is None:
        raise NotAuthenticated("A bearer token (export scope) or an admin login is required")
    if not principal.user.is_admin:
        raise Forbidden("Admins and export tokens only")
    return ExportAccess(token=None, user_id=principal.user.id)


ExportAccessDep = Annotated[ExportAccess, Depends(get_export_access)]


def project_for_export(session: Session, *, slug: str, access: ExportAccess) -> Project:
    project = session.scalar(select(Project).where(Project.slug == slug))
    return access.check(project)
