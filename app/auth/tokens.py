"""Export tokens of a project: listing and revoking them (an admin's work on the export page and API).

A token is made by ``app.auth.service.create_api_token`` like any other; these are the export-scope ones of
one project, which the export page and ``/api/v1/projects/{project}/tokens`` manage.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kit.errors import NotFound
from app.models import ApiToken, Project, utcnow


def export_tokens(session: Session, *, project: Project) -> list[ApiToken]:
    """The project's export tokens, newest first (revoked ones too: the page shows them as revoked)."""
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.project_id == project.id, ApiToken.scope == "export")
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def revoke_export_token(session: Session, *, project: Project, token_id: int) -> ApiToken:
    """Revoke one of the project's export tokens; revoking it again keeps the first revocation's time."""
    token = session.get(ApiToken, token_id)
    if token is None or token.project_id != project.id or token.scope != "export":
        raise NotFound("No such token")
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()
    return token
