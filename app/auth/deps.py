"""Request dependencies: the database session, who is asking, CSRF, and roles.

Every HTML and JSON route declares one of ``CurrentUser`` / ``AdminUser`` (or is public on purpose);
a state-changing request authenticated by cookie must carry the session's CSRF token and, if the
browser sends an Origin, a same-origin one.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from app.auth import service
from app.i18n import normalize, set_language
from app.kit.errors import Forbidden, NotAuthenticated
from app.kit.security import equals
from app.models import AuthSession, User
from app.web.deps import UNSAFE_METHODS, SessionDep, get_database, get_settings_dep

SESSION_COOKIE = "prefstudio_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: str
    language: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(user.id, user.username, user.display_name, user.role, user.language)


@dataclass
class Principal:
    user: User
    via: str  # "cookie" | "token"
    auth_session: AuthSession | None = None


def client_address(request: Request) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy (``PREFSTUDIO_TRUSTED_PROXIES``);
    then the nearest X-Forwarded-For entry that is not a trusted proxy (the ones left of it are the client's say)."""
    peer = request.client.host if request.client else "unknown"
    networks = get_settings_dep(request).trusted_proxy_networks
    if not networks or not _in_networks(peer, networks):
        return peer
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            ip_address(hop)
        except ValueError:
            return peer  # a garbled header: the proxy's own address is the one thing known
        if not _in_networks(hop, networks):
            return hop
    return hops[0] if hops else peer


def _in_networks(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def same_origin(request: Request) -> bool:
    """True unless the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if origin is None:  # not sent by this client: the CSRF token alone decides
        return True
    expected = f"{request.url.scheme}://{request.url.netloc}"
    return origin == expected


async def _check_csrf(request: Request, auth_session: AuthSession) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    if not same_origin(request):
        raise Forbidden("Cross-origin request refused")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached by Starlette; the route's form model reuses it
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not sent or not equals(sent, auth_session.csrf_token):
        raise Forbidden("CSRF token missing or invalid; reload the page and try again")


async def get_principal(request: Request, session: SessionDep) -> Principal | None:
    """Who is asking: a bearer API token, or a live cookie session (CSRF-checked on writes)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    settings = get_settings_dep(request)
    principal: Principal | None = None
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
        # Database work off the event loop: a query waiting on a lock here would stall every other request.
        user = await run_in_threadpool(
            service.user_for_api_token, session, token=token, settings=settings, db=get_database(request)
        )
        if user is None:
            raise NotAuthenticated("Invalid or revoked token")
        principal = Principal(user=user, via="token")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            found = await run_in_threadpool(
                service.resolve_session, session, token=cookie, settings=settings, db=get_database(request)
            )
            if found is not None:
                auth_session, user = found
                request.state.csrf_token = auth_session.csrf_token
                await _check_csrf(request, auth_session)
                principal = Principal(user=user, via="cookie", auth_session=auth_session)
    return remember_principal(request, principal)


def remember_principal(request: Request, principal: Principal | None) -> Principal | None:
    """Make ``principal`` the request's caller: for the later dependencies, the language and the templates."""
    request.state.principal = principal
    if principal is not None and (language := normalize(principal.user.language)):
        set_language(language)  # the user's setting beats the cookie and the browser's
    # Templates (error pages included, rendered after the session closed) see a plain copy, not the ORM row.
    request.state.user = UserView.of(principal.user) if principal else None
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(get_principal)]


async def get_current_user(principal: OptionalPrincipal) -> User:
    if principal is None:
        raise NotAuthenticated()
    return principal.user


async def get_admin_user(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("Admins only")
    return user


async def get_optional_user(principal: OptionalPrincipal) -> User | None:
    return principal.user if principal else None


CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(get_admin_user)]
OptionalUser = Annotated[User | None, Depends(get_optional_user)]
