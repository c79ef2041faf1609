"""One error path: an ``AppError`` (or a framework error) becomes JSON for scripts, a toast for htmx, a page
otherwise; a 401 sends a person to the login page and back."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from app.kit.errors import AppError
from app.kit.htmx import is_htmx
from app.templating import templates


def wants_json(request: Request) -> bool:
    # Bearer-token callers are scripts: they get JSON errors, never a redirect to the login page.
    return (
        request.url.path.startswith("/api/")
        or "application/json" in request.headers.get("accept", "")
        or request.headers.get("authorization", "").lower().startswith("bearer ")
    )


def _login_redirect(request: Request) -> Response:
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


def error_response(
    request: Request, status_code: int, detail: Any, *, headers: dict[str, str] | None = None
) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    message = detail if isinstance(detail, str) else "The request could not be processed."
    if status_code == 401:
        return _login_redirect(request)
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


async def app_error(request: Request, exc: AppError) -> Response:
    return error_response(request, exc.status_code, exc.detail, headers=exc.headers or None)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    cause = exc.__context__
    if isinstance(cause, MultiPartException) and "exceeded maximum size" in cause.message:
        # One form field over Starlette's per-part limit (1 MB): a body too large, not a malformed one.
        return error_response(request, 413, "Request body too large: one form field is over 1 MB")
    return error_response(request, exc.status_code, exc.detail)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    if wants_json(request):
        return JSONResponse({"detail": errors}, status_code=422)
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
    return error_response(request, 422, text or "Invalid input")


async def data_error(request: Request, exc: DataError) -> Response:
    # A value the database cannot store (PostgreSQL text cannot hold NUL): the client's input, so a 422.
    message = (
        "Text cannot contain NUL (0x00) characters"
        if "NUL" in str(exc.orig)
        else "A value is out of range for the database"
    )
    if wants_json(request):
        return JSONResponse({"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]}, status_code=422)
    return error_response(request, 422, message)


def server_error(headers: dict[str, str]) -> Any:
    """The handler of any other exception. It is answered by Starlette's outermost layer, outside the middleware:
    the security ``headers`` are added here. The error is raised again after this response (and logged by the
    server)."""

    async def handle(request: Request, exc: Exception) -> Response:
        try:
            response = error_response(request, 500, "Something went wrong on the server; please try again.")
        except Exception:  # the error page itself failed
            response = PlainTextResponse("Internal server error", status_code=500)
        response.headers.update({**headers, "Cache-Control": "no-store"})
        return response

    return handle


def add_exception_handlers(app: FastAPI, *, headers: dict[str, str]) -> None:
    app.add_exception_handler(AppError, app_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, data_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, server_error(headers))
