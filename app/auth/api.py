"""JSON: the caller's own tokens and password; every token for admins."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.auth import service
from app.auth.deps import AdminUser, CurrentUser, OptionalPrincipal, client_address
from app.auth.schemas import PasswordChange, TokenCreate, TokenCreated, TokenOut
from app.i18n import gettext
from app.kit.schemas import Message, RowId
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["account"])


@router.get("/me/tokens", response_model=list[TokenOut])
def list_own_tokens(user: CurrentUser, session: SessionDep) -> list[TokenOut]:
    """The caller's tokens of every scope, revoked ones included (their values are never shown again)."""
    return [TokenOut.of(row) for row in service.list_api_tokens(session, user_id=user.id)]


@router.post("/me/tokens", response_model=TokenCreated, status_code=201)
def create_own_token(body: TokenCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> TokenCreated:
    """A new ``api`` token acting as the caller, shown once; only its keyed hash is stored."""
    token, plain = service.create_api_token(session, user=user, scope="api", settings=settings, name=body.name)
    row = service.TokenRow(token, user.username, None)
    return TokenCreated(**TokenOut.of(row).model_dump(), token=plain)


@router.delete("/me/tokens/{token_id}", response_model=Message)
def revoke_own_token(token_id: RowId, user: CurrentUser, session: SessionDep) -> Message:
    """Revoke one of the caller's tokens: it stops working at once."""
    service.revoke_api_token(session, token_id=token_id, owner_id=user.id)
    return Message(detail="revoked")


@router.post("/me/password", response_model=Message)
def change_own_password(
    body: PasswordChange,
    request: Request,
    principal: OptionalPrincipal,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Message | Response:
    """Change the caller's password (the current one is required); their other login sessions end."""
    keep = principal.auth_session.id if principal and principal.auth_session else None
    changed = service.change_own_password(
        session,
        user=user,
        old_password=body.old_password,
        new_password=body.new_password,
        settings=settings,
        ip=client_address(request),
        keep_session_id=keep,
    )
    if not changed:  # answered, not raised: the failed attempt is committed and counts towards the limits
        return JSONResponse({"detail": gettext("The current password is wrong.")}, status_code=422)
    return Message(detail="password changed")


@router.get("/tokens", response_model=list[TokenOut])
def list_all_tokens(admin: AdminUser, session: SessionDep) -> list[TokenOut]:
    """Every user's tokens of every scope (admins)."""
    return [TokenOut.of(row) for row in service.list_api_tokens(session)]


@router.delete("/tokens/{token_id}", response_model=Message)
def revoke_any_token(token_id: RowId, admin: AdminUser, session: SessionDep) -> Message:
    """Revoke any token (admins): it stops working at once."""
    service.revoke_api_token(session, token_id=token_id)
    return Message(detail="revoked")
