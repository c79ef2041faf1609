"""Sets the language of each request from the ``prefstudio_lang`` cookie and ``Accept-Language``."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.i18n import COOKIE, choose_language, reset_language, set_language


class LanguageMiddleware:
    """The user's own setting, known only once the session is read, overrides this in ``get_principal``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        language = choose_language(
            cookie=connection.cookies.get(COOKIE), accept_language=connection.headers.get("accept-language")
        )
        token = set_language(language)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_language(token)
