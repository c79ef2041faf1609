"""The request's database session and settings, as FastAPI dependencies.

Kept apart from ``app.db`` and ``app.config``: those are imported by processes that serve no request (the worker,
the export processes), and FastAPI in them cost each export process about 7 MB (``bench/export.py``: the CLI and
its export processes together 251 → 268 MB, the server's 280 → 297 MB against the 300 MB target).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; committed when the handler returns, before the response is sent.

    Made on the event loop (a session touches the database only when first used) and finished in a worker
    thread (commit, rollback and giving the connection back are database round trips): one thread hop per
    request instead of two."""
    db = get_database(request)
    write = request.method in UNSAFE_METHODS
    factory = db.WriteSession if write else db.ReadSession
    session = factory(info={"write": write})
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_finish, session, commit=False)
        raise
    await run_in_threadpool(_finish, session, commit=True)


def _finish(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
