"""create_app(): routers, static files, templates, middleware and error handlers."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import ROOT, Settings, get_settings
from app.db import Database, make_database
from app.i18n.middleware import LanguageMiddleware
from app.kit.activity import ActivityMiddleware
from app.kit.bodylimit import BodyLimitMiddleware
from app.kit.errors import AppError
from app.kit.htmx import is_htmx
from app.kit.markdown import parse_origins, set_image_origins
from app.kit.schemas import API_ERROR_RESPONSES

log = logging.getLogger("prefstudio")
# A request thread whose database answer has arrived waits for the interpreter lock at most this long while
# another thread computes (Python's default is 5 ms, paid at each of a request's ~15 round trips).
SWITCH_INTERVAL = 0.001
WARM_CONNECTIONS = 8  # opened before serving (of the pool's 20 on PostgreSQL)
# Swagger UI, vendored (npm swagger-ui-dist, pinned): the page's scripts and styles all come from this site.
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
API_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>prefstudio API</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/js/api-docs.js"></script>
</body>
</html>
"""


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


def _wants_json(request: Request) -> bool:
    # Bearer-token callers are scripts: they get JSON errors, never a redirect to the login page.
    return (
        request.url.path.startswith("/api/")
        or "application/json" in request.headers.get("accept", "")
        or request.headers.get("authorization", "").lower().startswith("bearer ")
    )


def _error_response(
    request: Request, status_code: int, detail: Any, *, headers: dict[str, str] | None = None
) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    message = detail if isinstance(detail, str) else "The request could not be processed."
    if status_code == 401:
        # Back to where the user was after logging in: for htmx the page they are on, not the request's URL.
        current = urlsplit(request.headers.get("HX-Current-URL", "")) if is_htmx(request) else None
        if current and current.path:
            back = current.path + (f"?{current.query}" if current.query else "")
        else:
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login_url = "/login?next=" + quote(back)
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": login_url})
        return RedirectResponse(login_url, status_code=303)
    from app.templating import templates

    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            "_toast.html",
            {"message": message, "level": "error"},
            status_code=status_code,
            headers={"HX-Retarget": "#toasts", "HX-Reswap": "beforeend", **(headers or {})},
        )
    return templates.TemplateResponse(
        request,
        "error.html",
        {"message": message, "status_code": status_code},
        status_code=status_code,
        headers=headers,
    )


def warm_up(db: Database) -> None:
    """Before a server process takes requests: open some database connections, count the newest projects for
    the annotation page, compile every template and make the password check's stand-in hash. Otherwise the first
    second of requests pays for all of it at once (next-item answered in 0.3–1.7 s for the first 1.8 s of a load
    run, then in 30 ms)."""
    from app.annotation.progress import warm_counts
    from app.kit.security import dummy_hash
    from app.templating import compile_templates

    engine = db.read_engine
    opened = [engine.connect() for _ in range(min(WARM_CONNECTIONS, engine.pool.size()))]  # type: ignore[attr-defined]
    for conn in opened:
        conn.close()
    warm_counts(db)
    compile_templates()
    dummy_hash()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            await run_in_threadpool(warm_up, app.state.db)
        except Exception:  # a database that is down now is reported by the requests (and /healthz) instead
            log.exception("warming up")
        # What start-up made lives as long as the process: out of the collector's sight, a full collection no
        # longer walks it all (150k objects: 105 ms holding the interpreter lock, every few hundred requests —
        # each time, every request of the process waited).
        if settings.gc_freeze:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if settings.gc_freeze:
                gc.unfreeze()  # an app started and stopped within a longer process leaves nothing pinned

    app = FastAPI(
        lifespan=lifespan,
        title="prefstudio",
        version="0.1.0",
        description="Human preference data for DPO: prompts → candidates → judgments → pairs.",
        docs_url=None,  # our own page below: FastAPI's loads Swagger UI from a CDN with an inline script
        redoc_url=None,
    )
    app.state.settings = settings
    image_origins = parse_origins(settings.markdown_image_origins)
    set_image_origins(image_origins)
    headers = security_headers(image_origins)
    app.state.db = make_database(settings)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return _error_response(request, exc.status_code, exc.detail, headers=exc.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cause = exc.__context__
        if isinstance(cause, MultiPartException) and "exceeded maximum size" in cause.message:
            # One form field over Starlette's per-part limit (1 MB): a body too large, not a malformed one.
            return _error_response(request, 413, "Request body too large: one form field is over 1 MB")
        return _error_response(request, exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        if _wants_json(request):
            return JSONResponse({"detail": errors}, status_code=422)
        text = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
        return _error_response(request, 422, text or "Invalid input")

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # A value the database cannot store (PostgreSQL text cannot hold NUL): the client's input, so a 422.
        message = (
            "Text cannot contain NUL (0x00) characters"
            if "NUL" in str(exc.orig)
            else "A value is out of range for the database"
        )
        if _wants_json(request):
            return JSONResponse({"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]}, status_code=422)
        return _error_response(request, 422, message)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> Response:
        # Answered by Starlette's outermost layer, outside the middleware below: the headers are added here. The
        # error is raised again after this response (and logged by the server).
        try:
            response = _error_response(request, 500, "Something went wrong on the server; please try again.")
        except Exception:  # the error page itself failed
            response = PlainTextResponse("Internal server error", status_code=500)
        response.headers.update({**headers, "Cache-Control": "no-store"})
        return response

    # Added last, the security headers wrap everything else: a 413 from the body limit carries them too.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_mb * 1024 * 1024,
        max_parsed_bytes=settings.max_body_mb * 1024 * 1024,
    )
    app.add_middleware(LanguageMiddleware)
    app.add_middleware(ActivityMiddleware, data_dir=settings.data_dir)
    app.add_middleware(SecurityHeadersMiddleware, headers=headers)

    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """Swagger UI on the OpenAPI document, from files vendored under static/ (see SWAGGER_UI)."""
        return HTMLResponse(API_DOCS_PAGE.format(assets=SWAGGER_UI, openapi=escape(app.openapi_url or "")))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness and database reachability."""
        from sqlalchemy import text

        with app.state.db.session(write=False) as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    from app.adjudication import api as adjudication_api
    from app.adjudication import router as adjudication_router
    from app.agreement import api as agreement_api
    from app.agreement import router as agreement_router
    from app.annotation import api as annotation_api
    from app.annotation import router as annotation_router
    from app.auth import api as auth_api
    from app.auth import router as auth_router
    from app.export import api as export_api
    from app.export import router as export_router
    from app.generation import api as generation_api
    from app.generation import router as generation_router
    from app.i18n import router as i18n_router
    from app.items import api as items_api
    from app.items import router as items_router
    from app.projects import api as projects_api
    from app.projects import router as projects_router
    from app.training import api as training_api
    from app.training import router as training_router

    for module in (
        auth_router,
        i18n_router,
        projects_router,
        items_router,
        annotation_router,
        generation_router,
        agreement_router,
        adjudication_router,
        export_router,
        training_router,
    ):
        app.include_router(module.router)
    for module in (
        auth_api,
        projects_api,
        items_api,
        annotation_api,
        generation_api,
        agreement_api,
        adjudication_api,
        export_api,
        training_api,
    ):
        app.include_router(module.router, prefix="/api/v1", responses=API_ERROR_RESPONSES)
    return app
