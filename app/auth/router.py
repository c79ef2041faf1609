"""HTML: login, logout, the user's own tokens and password, and the admin's user and token pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import service
from app.auth.deps import (
    SESSION_COOKIE,
    AdminUser,
    CurrentUser,
    OptionalPrincipal,
    OptionalUser,
    client_address,
    same_origin,
)
from app.auth.schemas import ActiveForm, LoginForm, NewUserForm, OwnPasswordForm, PasswordResetForm, TokenForm
from app.i18n import LANGUAGES, gettext
from app.i18n import remember as remember_language
from app.kit.errors import AppError, Forbidden, TooManyRequests
from app.kit.forms import form_of
from app.kit.htmx import redirect, render
from app.kit.schemas import RowId
from app.kit.security import equals, new_token
from app.models import User
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(tags=["auth pages"], include_in_schema=False)

# Double-submit token of the forms an anonymous browser may post: the login form and the language switcher.
LOGIN_CSRF_COOKIE = "prefstudio_login_csrf"


def safe_next(target: str | None, *, default: str = "/projects") -> str:
    """Only local paths: never an open redirect to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def check_anonymous_form(request: Request, sent: str, *, expired: str) -> None:
    """403 unless a form posted without a session comes from our own page: same origin, and the double-submit
    token of its cookie sent back in the form (``expired``: what to say when it is not)."""
    if not same_origin(request):
        raise Forbidden("Cross-origin request refused")
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not sent or not equals(cookie, sent):
        raise Forbidden(expired)


def _login_page(
    request: Request, *, next_url: str, error: str | None = None, username: str = "", status_code: int = 200
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token(24)
    request.state.csrf_token = token
    response = render(
        request,
        "auth/login.html",
        {"request": request, "next": next_url, "error": error, "username": username},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.get("/")
def home(user: OptionalUser) -> Response:
    """The start page: projects when logged in, else the login page."""
    return RedirectResponse("/projects" if user else "/login", status_code=303)


@router.get("/login")
def login_page(request: Request, user: OptionalUser, next: str = "/projects") -> Response:  # noqa: A002
    """The login form."""
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[LoginForm, form_of(LoginForm)],
) -> Response:
    """Check the password, start a fresh session, and go where the user was going."""
    # Login CSRF: another site must not log this browser in as someone else.
    check_anonymous_form(request, form.csrf_token, expired="The login form expired; reload the page and try again")
    next_url = safe_next(form.next)
    try:
        user = service.authenticate(
            session, username=form.username, password=form.password, ip=client_address(request), settings=settings
        )
    except TooManyRequests as exc:
        page = _login_page(request, next_url=next_url, error=str(exc.detail), username=form.username, status_code=429)
        page.headers.update(exc.headers)
        return page
    if user is None:
        return _login_page(
            request,
            next_url=next_url,
            error=gettext("Wrong username or password."),
            username=form.username,
            status_code=401,
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        service.end_session(session, token=old, settings=settings)
    token = service.start_session(
        session, user=user, settings=settings, ip=client_address(request), user_agent=request.headers.get("user-agent")
    )
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
        max_age=settings.session_max_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    if user.language in LANGUAGES:  # the login page after a logout speaks the user's language too
        remember_language(response, request, user.language)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> Response:
    """End this session everywhere (the server forgets it)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.end_session(session, token=token, settings=settings)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _users_page(request: Request, session: SessionDep, *, error: str | None = None, status_code: int = 200) -> Response:
    context = {
        "request": request,
        "users": service.list_users(session),
        "project_counts": service.project_counts(session),
        "error": error,
    }
    return render(request, "admin/users.html", context, status_code=status_code)


@router.get("/admin/users")
def users_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """Every user, with forms to add one, reset a password, or switch one off."""
    return _users_page(request, session)


@router.post("/admin/users")
def add_user(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    form: Annotated[NewUserForm, form_of(NewUserForm)],
) -> Response:
    """Add a user."""
    try:
        service.create_user(
            session, username=form.username, password=form.password, role=form.role, display_name=form.display_name
        )
    except AppError as exc:
        return _users_page(request, session, error=str(exc.detail), status_code=exc.status_code)
    return redirect(request, "/admin/users")


@router.post("/admin/users/{user_id}/password")
def reset_password(
    user_id: RowId,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    form: Annotated[PasswordResetForm, form_of(PasswordResetForm)],
) -> Response:
    """Set a new password; the user's sessions end and their tokens are revoked."""
    service.set_password(session, user=service.get_user(session, user_id), password=form.password)
    return redirect(request, "/admin/users")


@router.post("/admin/users/{user_id}/active")
def set_active(
    user_id: RowId,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    form: Annotated[ActiveForm, form_of(ActiveForm)],
) -> Response:
    """Switch a user on or off (off: sessions end, tokens are revoked, logins refused)."""
    user = service.get_user(session, user_id)
    if user.id == admin.id:  # said on the page, with the list of users, rather than on an error page
        return _users_page(request, session, error=gettext("You cannot switch yourself off."), status_code=403)
    service.set_active(session, user=user, active=form.active == "1")
    return redirect(request, "/admin/users")


# --- the user's own account: tokens and password -------------------------------------------------------------


def _tokens_page(
    request: Request,
    session: SessionDep,
    user: User,
    *,
    created: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "request": request,
        "tokens": service.list_api_tokens(session, user_id=user.id),
        "created": created,
        "error": error,
    }
    return render(request, "auth/tokens.html", context, status_code=status_code)


@router.get("/account/tokens")
def tokens_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The user's own tokens: name, scope, when made and last used; revoke, or make a new one."""
    return _tokens_page(request, session, user)


@router.post("/account/tokens")
def create_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    form: Annotated[TokenForm, form_of(TokenForm)],
) -> Response:
    """Make an ``api`` token acting as the user; the page shows its value this once."""
    _, plain = service.create_api_token(session, user=user, scope="api", settings=settings, name=form.name.strip())
    return _tokens_page(request, session, user, created=plain)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_own_token(token_id: RowId, request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Revoke one of the user's own tokens."""
    service.revoke_api_token(session, token_id=token_id, owner_id=user.id)
    return redirect(request, "/account/tokens")


def _password_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    return render(request, "auth/password.html", {"request": request, "error": error}, status_code=status_code)


@router.get("/account/password")
def password_page(request: Request, user: CurrentUser) -> Response:
    """The form to change one's own password."""
    return _password_page(request)


@router.post("/account/password")
def change_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: OptionalPrincipal,
    user: CurrentUser,
    form: Annotated[OwnPasswordForm, form_of(OwnPasswordForm)],
) -> Response:
    """Change one's own password: the current one is required; the other sessions end, this one goes on."""
    keep = principal.auth_session.id if principal and principal.auth_session else None
    try:
        changed = service.change_own_password(
            session,
            user=user,
            old_password=form.old_password,
            new_password=form.new_password,
            settings=settings,
            ip=client_address(request),
            keep_session_id=keep,
        )
    except AppError as exc:
        page = _password_page(request, error=str(exc.detail), status_code=exc.status_code)
        page.headers.update(exc.headers)  # Retry-After of a failed-login wait
        return page
    if not changed:  # answered, not raised: the failed attempt is committed and counts towards the limits
        return _password_page(request, error=gettext("The current password is wrong."), status_code=422)
    return redirect(request, "/projects")


# --- every token, for admins ---------------------------------------------------------------------------------


@router.get("/admin/tokens")
def all_tokens_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """Every user's tokens of every scope, with revoke."""
    context = {"request": request, "tokens": service.list_api_tokens(session)}
    return render(request, "admin/tokens.html", context)


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_any_token(token_id: RowId, request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """Revoke any token."""
    service.revoke_api_token(session, token_id=token_id)
    return redirect(request, "/admin/tokens")
