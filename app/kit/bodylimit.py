"""Request body limits: a small one for every request, the upload limit only where a route lifts it.

Every body starts under ``max_parsed_bytes`` (what a form or a JSON document may be), whatever its content type.
An import route calls :func:`allow_upload` once the caller is known to be allowed to import; only then may the
body grow to ``max_bytes``. Nothing is buffered here: a body over its limit is refused with 413 as it streams in.
"""

from __future__ import annotations

import tempfile
from typing import IO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "prefstudio.body_limit"


class _Limit:
    """This request's limits, shared by the middleware and the route through the ASGI scope."""

    __slots__ = ("current", "upload")

    def __init__(self, current: int, upload: int) -> None:
        self.current = current
        self.upload = upload


def allow_upload(request: Request) -> None:
    """Let this request's body grow to the upload limit. Call it only after authentication and authorisation."""
    limit: _Limit | None = request.scope.get(SCOPE_KEY)
    if limit is not None:
        limit.current = limit.upload


async def spool_body(request: Request) -> IO[bytes]:
    """The raw body in an anonymous file on disk, written as it arrives (memory stays at one chunk)."""
    stream = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(stream.write, chunk)
        stream.seek(0)
    except BaseException:
        stream.close()
        raise
    return stream


class BodyLimitMiddleware:
    """Refuse bodies over the request's limit with 413, by Content-Length or while streaming, without buffering."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_parsed_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_parsed_bytes = max_bytes if max_parsed_bytes is None else min(max_parsed_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > self.max_bytes:  # over any limit a route could lift it to
            await _too_large(scope, receive, send, self.max_bytes)
            return
        limit = _Limit(self.max_parsed_bytes, self.max_bytes)
        scope[SCOPE_KEY] = limit
        seen = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            # A declared length over the limit in force is refused before a byte of the body is read.
            if declared is not None and declared > limit.current:
                refused = True
                raise _BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit.current:
                    refused = True
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                # FastAPI turns any error while reading a JSON or form body into its own 400: answer 413 instead.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _too_large(scope, receive, send, limit.current)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(scope, receive, send, limit.current)


class _BodyTooLarge(Exception):
    pass


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


async def _too_large(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
    response = JSONResponse({"detail": f"Request body too large (limit {_megabytes(max_bytes)})"}, status_code=413)
    await response(scope, receive, send)
