"""Users, login sessions, failed-login limits and API tokens."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable

from app.config import Settings
from app.db import Database
from app.i18n import LANGUAGES, gettext
from app.kit.errors import Conflict, Invalid, NotFound, TooManyRequests
from app.kit.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from app.models import ApiToken, AuthSession, LoginFailure, Project, ProjectMember, User, utcnow
from app.models.user import ROLES

USERNAME_MAX = 64
# Refresh last_seen_at at most this often, so reading pages does not write on every request.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenRow:
    token: ApiToken
    username: str
    project: str | None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"Password must be at least {MIN_PASSWORD_LENGTH} characters")


def create_user(
    session: Session, *, username: str, password: str, role: str = "annotator", display_name: str = ""
) -> User:
    """Add a user with an argon2id password hash."""
    username = username.strip()
    if not username or len(username) > USERNAME_MAX or any(c.isspace() for c in username):
        raise Invalid("Username must be 1–64 characters without spaces")
    if role not in ROLES:
        raise Invalid(f"Role must be one of {', '.join(ROLES)}")
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"User {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name.strip() or username,
        password_hash=hash_password(password),
        role=role,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"User {username!r} already exists") from exc
    return user


def set_language(session: Session, *, user: User, language: str | None) -> None:
    """Keep the user's interface language (a code of LANGUAGES; None: follow the browser)."""
    if language is not None and language not in LANGUAGES:
        raise Invalid(f"Language must be one of {', '.join(LANGUAGES)}")
    user.language = language
    session.flush()


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    return user


def get_user_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def first_admin(session: Session) -> User | None:
    """The admin made first: who owns what a command makes when no user is named."""
    return session.scalar(select(User).where(User.role == "admin").order_by(User.id))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def project_counts(session: Session) -> dict[int, int]:
    """How many projects each user is a member of, by user id (users of none are left out)."""
    return dict(
        session.execute(select(ProjectMember.user_id, func.count()).group_by(ProjectMember.user_id)).tuples().all()
    )


def set_password(session: Session, *, user: User, password: str) -> None:
    """An admin's reset: a new password, and every session and token of the user ends (export tokens too: a
    reset answers a doubt about who held the account, and whoever did could have made them)."""
    _check_password(password)
    user.password_hash = hash_password(password)
    revoke_user_sessions(session, user_id=user.id)
    revoke_user_tokens(session, user_id=user.id)
    session.flush()


def set_active(session: Session, *, user: User, active: bool) -> None:
    """Switch a user on or off; off ends their sessions and revokes their tokens (switching on revives none)."""
    user.is_active = active
    if not active:
        revoke_user_sessions(session, user_id=user.id)
        revoke_user_tokens(session, user_id=user.id)
    session.flush()


def change_own_password(
    session: Session,
    *,
    user: User,
    old_password: str,
    new_password: str,
    settings: Settings,
    ip: str,
    keep_session_id: str | None = None,
) -> bool:
    """The user's own change: the current password is required, the other sessions end, the one making the change
    (``keep_session_id``) goes on; tokens stay. False if the current password is wrong: that counts as a failed
    login, so it is returned rather than raised (an error would roll the record back)."""
    _check_pair_backoff(session, username=user.username, ip=ip[:64], settings=settings)
    if not verify_password(old_password, user.password_hash):
        session.add(LoginFailure(username=user.username, ip=ip[:64]))
        session.flush()
        return False
    _check_password(new_password)
    user.password_hash = hash_password(new_password)
    revoke_user_sessions(session, user_id=user.id, keep_session_id=keep_session_id)
    session.flush()
    return True


def revoke_user_sessions(session: Session, *, user_id: int, keep_session_id: str | None = None) -> None:
    statement = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if keep_session_id is not None:
        statement = statement.where(AuthSession.id != keep_session_id)
    session.execute(statement.values(revoked_at=utcnow()))


def revoke_user_tokens(session: Session, *, user_id: int) -> None:
    session.execute(
        update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )


def _too_many(message: str, *, retry_after: int) -> TooManyRequests:
    error = TooManyRequests(message)
    error.headers = {"Retry-After": str(retry_after)}  # this error's own copy, not the class's
    return error


def _window_start(settings: Settings) -> datetime:
    return utcnow() - timedelta(minutes=settings.login_failure_window_minutes)


def _check_pair_backoff(session: Session, *, username: str, ip: str, settings: Settings) -> None:
    """One account from one address: a few free tries, then a wait that doubles with each further failure (at
    most the window). It holds up only the guesser at that address, never the owner elsewhere."""
    count, last = session.execute(
        select(func.count(), func.max(LoginFailure.created_at)).where(
            LoginFailure.username == username, LoginFailure.ip == ip, LoginFailure.created_at > _window_start(settings)
        )
    ).one()
    if count < settings.login_max_failures_per_pair or last is None:
        return
    window = settings.login_failure_window_minutes * 60
    wait = min(settings.login_backoff_seconds * 2 ** min(count - settings.login_max_failures_per_pair, 20), window)
    left = math.ceil((last + timedelta(seconds=wait) - utcnow()).total_seconds())
    if left > 0:
        raise _too_many(
            gettext("Too many failed logins for this account from your address; try again in {n} seconds.").format(
                n=left
            ),
            retry_after=left,
        )


def _check_rate_limit(session: Session, *, username: str, ip: str, settings: Settings) -> None:
    _check_pair_backoff(session, username=username, ip=ip, settings=settings)
    since = _window_start(settings)
    by_ip = session.scalar(select(func.count()).where(LoginFailure.ip == ip, LoginFailure.created_at > since))
    if (by_ip or 0) >= settings.login_max_failures_per_ip:
        raise _too_many(
            gettext("Too many failed logins from your address; try again in {n} minutes.").format(
                n=settings.login_failure_window_minutes
            ),
            retry_after=settings.login_failure_window_minutes * 60,
        )


def _check_account_limit(session: Session, *, user: User, ip: str, settings: Settings) -> None:
    """Guessing from many addresses: past a limit far above the pair's, only addresses the account has logged in
    from before still get in, so the owner is not locked out by strangers."""
    by_account = session.scalar(
        select(func.count()).where(
            LoginFailure.username == user.username, LoginFailure.created_at > _window_start(settings)
        )
    )
    if (by_account or 0) < settings.login_max_failures_per_account:
        return
    known = session.scalar(select(AuthSession.id).where(AuthSession.user_id == user.id, AuthSession.ip == ip).limit(1))
    if known is None:
        raise _too_many(
            gettext(
                "Too many failed logins for this account; log in from an address you have used before, "
                "or try again in {n} minutes."
            ).format(n=settings.login_failure_window_minutes),
            retry_after=settings.login_failure_window_minutes * 60,
        )


def authenticate(session: Session, *, username: str, password: str, ip: str, settings: Settings) -> User | None:
    """The user if the password matches; records failures and enforces the failed-login limits (see Settings)."""
    username = username.strip()[:USERNAME_MAX]
    ip = ip[:64]
    _check_rate_limit(session, username=username, ip=ip, settings=settings)
    user = get_user_by_username(session, username)
    if user is not None:
        _check_account_limit(session, user=user, ip=ip, settings=settings)
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active or user.external:  # an imported annotator never logs in
        session.add(LoginFailure(username=username, ip=ip))
        session.flush()
        return None
    # A success clears this address's failures on the account only: others' guesses still count.
    session.execute(delete(LoginFailure).where(LoginFailure.username == username, LoginFailure.ip == ip))
    return user


def start_session(
    session: Session, *, user: User, settings: Settings, ip: str | None = None, user_agent: str | None = None
) -> str:
    """Create a fresh server-side session; returns the cookie token (only its digest is stored)."""
    token = new_token()
    now = utcnow()
    session.add(
        AuthSession(
            id=token_digest(token, settings.secret_key or ""),
            user_id=user.id,
            csrf_token=new_token(24),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_max_hours),
            ip=(ip or "")[:64] or None,
            user_agent=(user_agent or "")[:255] or None,
        )
    )
    session.flush()
    return token


def end_session(session: Session, *, token: str, settings: Settings) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == token_digest(token, settings.secret_key or ""))
        .values(revoked_at=utcnow())
    )


def resolve_session(
    session: Session, *, token: str, settings: Settings, db: Database
) -> tuple[AuthSession, User] | None:
    """The live session and its user for a cookie token, or None (unknown, revoked, idle, expired)."""
    row = session.execute(
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id == token_digest(token, settings.secret_key or ""))
    ).first()
    if row is None:
        return None
    auth_session, user = row
    if not user.is_active or user.external or not session_is_live(auth_session, settings):
        return None
    now = utcnow()
    if now - auth_session.last_seen_at > _TOUCH_EVERY:
        _write_soon(session, db, update(AuthSession).where(AuthSession.id == auth_session.id).values(last_seen_at=now))
        set_committed_value(auth_session, "last_seen_at", now)  # written above; not a pending change
    return auth_session, user


def create_api_token(
    session: Session,
    *,
    user: User,
    scope: str,
    settings: Settings,
    project_id: int | None = None,
    name: str = "",
) -> tuple[ApiToken, str]:
    """A new token; the plain value is returned once and never stored."""
    if scope not in ("export", "api"):
        raise Invalid("Scope must be 'export' or 'api'")
    if scope == "export" and project_id is None:
        raise Invalid("An export token needs a project")
    plain = "ps_" + new_token()
    token = ApiToken(
        name=name,
        token_hash=token_digest(plain, settings.secret_key or ""),
        prefix=plain[:10],
        scope=scope,
        project_id=project_id,
        user_id=user.id,
    )
    session.add(token)
    session.flush()
    return token, plain


def live_api_token(session: Session, *, token: str, settings: Settings) -> tuple[ApiToken, User] | None:
    """A live (not revoked) token by its plain value, with its user, in one query (lookup by keyed digest; the
    digest is the comparison)."""
    row = (
        session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_digest(token, settings.secret_key or ""))
        )
        .tuples()
        .first()
    )
    if row is None or row[0].revoked_at is not None:
        return None
    return row


def _write_soon(session: Session, db: Database, statement: Executable) -> None:
    """Bookkeeping writes (last seen, last used): in the request's transaction when it writes anyway,
    else in a short transaction of their own, so reading pages never upgrades a read transaction."""
    if session.info.get("write"):
        session.execute(statement)
        return
    with db.session(write=True) as writer:
        writer.execute(statement)


def touch_api_token(session: Session, db: Database, token: ApiToken) -> None:
    """Record use (at most once a minute), in its own short write transaction."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < _TOUCH_EVERY:
        return
    _write_soon(session, db, update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    set_committed_value(token, "last_used_at", now)


def use_api_token(
    session: Session, *, token: str, settings: Settings, db: Database, scopes: tuple[str, ...]
) -> tuple[ApiToken, User] | None:
    """A live token of one of ``scopes`` whose user is active, with that user, its use recorded; None otherwise
    (a deactivated user's tokens open nothing, whatever their scope)."""
    row = live_api_token(session, token=token, settings=settings)
    if row is None or row[0].scope not in scopes or not row[1].is_active:
        return None
    touch_api_token(session, db, row[0])
    return row


def user_for_api_token(session: Session, *, token: str, settings: Settings, db: Database) -> User | None:
    """The user an ``api``-scope token acts as; export tokens do not open the rest of the API."""
    row = use_api_token(session, token=token, settings=settings, db=db, scopes=("api",))
    return row[1] if row is not None else None


def list_api_tokens(session: Session, *, user_id: int | None = None) -> list[TokenRow]:
    """Tokens of every scope, newest first, with their owner and project: one user's, or everyone's."""
    statement = (
        select(ApiToken, User.username, Project.slug)
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(Project, Project.id == ApiToken.project_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    if user_id is not None:
        statement = statement.where(ApiToken.user_id == user_id)
    return [TokenRow(token, username, slug) for token, username, slug in session.execute(statement).tuples()]


def revoke_api_token(session: Session, *, token_id: int, owner_id: int | None = None) -> ApiToken:
    """Revoke a token (``owner_id``: only if it is theirs; another's is "not found", as if it did not exist)."""
    token = session.get(ApiToken, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        raise NotFound("No such token")
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()
    return token


def session_is_live(auth_session: AuthSession, settings: Settings) -> bool:
    now = utcnow()
    return (
        auth_session.revoked_at is None
        and auth_session.expires_at > now
        and now - auth_session.last_seen_at < timedelta(minutes=settings.session_idle_minutes)
    )
