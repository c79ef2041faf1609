"""Each request timed once, for the latency histogram and (with ``PREFSTUDIO_LOG_FORMAT=json``) its log line.

A plain ASGI middleware, outermost but for the security headers: it sees the route the router matched (the
router writes it into the request's scope), the status the response started with, and who the auth dependencies
found (``request.state.principal``). It costs a histogram observation (a lock and an add) per request and no
database query.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.ops import logs, metrics

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before 0.16x: an included route's own path is its full path
    iter_route_contexts = None  # type: ignore[assignment]


class RouteTemplates:
    """The matched route's full path template (``/api/v1/projects/{project}/judgments``), or ``<unmatched>``.

    The router leaves the matched route in the scope; since FastAPI 0.16x an included router's routes keep their
    own path there (without the prefix they were included under), so each is looked up once among the app's
    routes with their effective paths (``fastapi.routing.iter_route_contexts``) and remembered."""

    def __init__(self) -> None:
        # id(route) → (route, template); the route is kept so that its id stays its own.
        self._known: dict[int, tuple[object, str]] = {}

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return metrics.UNMATCHED
        known = self._known.get(id(route))
        if known is None:
            self._learn(scope.get("app"))
            known = self._known.get(id(route))
            if known is None:  # not among the app's routes (a sub-application's): its own path
                known = self._known[id(route)] = (route, _path_of(route))
        return known[1]

    def _learn(self, app: Any) -> None:
        routes = getattr(app, "routes", None)
        if iter_route_contexts is None or routes is None:
            return
        for context in iter_route_contexts(routes):
            original = context.original_route
            if id(original) not in self._known and isinstance(context.path, str) and context.path:
                self._known[id(original)] = (original, context.path)


def _path_of(route: object) -> str:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED


def caller(scope: Scope) -> tuple[int | None, str | None]:
    """The user id and how they came in ("cookie" / "token"; "export-token": the id of the admin who made the
    project's export token), as the auth dependencies recorded them."""
    state = scope.get("state") or {}
    principal, user = state.get("principal"), state.get("user")  # ``user``: a plain copy (``UserView``)
    if principal is None or user is None:
        owner = state.get("export_token_owner")
        return (int(owner), "export-token") if owner is not None else (None, None)
    return int(user.id), str(principal.via)


class RequestObserver:
    """Times each HTTP request: observes it in the latency histogram, and writes its log line when asked to."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = False) -> None:
        self.app = app
        self.log_requests = log_requests
        self.templates = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})  # shared with the request object, which writes the principal into it
        request_id = logs.request_id_from(_header(scope, b"x-request-id"))
        token = logs.current_request_id.set(request_id)
        status = 500  # an exception before the response started becomes a 500 outside this middleware

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).setdefault("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - started
            route = self.templates.of(scope)
            metrics.observe_request(route, scope["method"], status, seconds)
            if self.log_requests:
                self._log(scope, route, status, seconds, request_id)
            logs.current_request_id.reset(token)

    @staticmethod
    def _log(scope: Scope, route: str, status: int, seconds: float, request_id: str) -> None:
        user_id, via = caller(scope)
        fields: dict[str, Any] = {
            "route": route,
            "method": scope["method"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "user_id": user_id,
            "auth": via,
            "request_id": request_id,
        }
        try:
            logs.request_line(fields)
        except Exception:  # a broken log sink must not fail the request
            logging.getLogger(__name__).debug("request line not written", exc_info=True)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def add_request_observer(app: FastAPI, settings: Settings) -> None:
    """The middleware, and the JSON logging it writes to when ``log_format`` is json."""
    app.add_middleware(RequestObserver, log_requests=settings.log_format == "json")
    logs.configure_logging(settings)
