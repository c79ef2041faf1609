"""The middleware stack, outermost last, and the security headers every response carries."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.i18n.middleware import LanguageMiddleware
from app.kit.activity import ActivityMiddleware
from app.kit.bodylimit import BodyLimitMiddleware
from app.ops.requests import add_request_observer


def content_security_policy(image_origins: Iterable[str] = ()) -> str:
    images = " ".join(["'self'", "data:", *sorted(image_origins)])
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def security_headers(image_origins: Iterable[str] = ()) -> dict[str, str]:
    """The headers of every response; ``image_origins``: where markdown may show images from (the settings)."""
    return {
        "Content-Security-Policy": content_security_policy(image_origins),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


CSP = content_security_policy()
SECURITY_HEADERS = security_headers()


class SecurityHeadersMiddleware:
    """The security headers on every response (a value the route set itself wins); ``no-store`` on everything
    but static files; HSTS over https.

    Plain ASGI, adding the headers as the response starts: Starlette's ``BaseHTTPMiddleware`` (what
    ``@app.middleware`` makes) ran every response through a task and a memory stream of its own."""

    def __init__(self, app: ASGIApp, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS if headers is None else headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = dict(self.headers)
        if scope.get("scheme") == "https":
            extra["Strict-Transport-Security"] = "max-age=31536000"
        if not scope["path"].startswith("/static/"):
            extra["Cache-Control"] = "no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in extra.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_middleware(app: FastAPI, settings: Settings, *, headers: dict[str, str]) -> None:
    """The stack, innermost first: each one added wraps the ones before it.

    Added last, the security headers wrap everything else: a 413 from the body limit carries them too."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_mb * 1024 * 1024,
        max_parsed_bytes=settings.max_body_mb * 1024 * 1024,
    )
    app.add_middleware(LanguageMiddleware)
    app.add_middleware(ActivityMiddleware, data_dir=settings.data_dir)
    add_request_observer(app, settings)  # latency histogram and request log lines (app.ops)
    app.add_middleware(SecurityHeadersMiddleware, headers=headers)
