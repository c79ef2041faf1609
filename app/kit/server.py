"""The HTTP server's defences against slow clients: uvicorn's options and a protocol with read deadlines.

uvicorn times out only idle keep-alive connections: a client that opens a connection and sends nothing, sends its
headers a byte at a time, or trickles a body holds the connection (and whatever the request holds) for as long as
it likes. The protocol below gives each connection
- ``header_timeout`` seconds from the connection (or the previous response) to the end of a request's headers,
  which may total at most ``max_header_bytes``;
- for the body, ``body_timeout`` seconds plus one second per ``min_body_rate`` bytes received, so an upload at a
  reasonable speed always finishes and a trickle is cut off. Time while the app is not reading does not count.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\n"
    b"connection: close\r\n\r\nRequest timeout\n"
)


class HeadersTooLarge(Exception):
    """Raised from a parser callback: uvicorn answers 400 and closes the connection."""


class DeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = 20.0
    body_timeout: float = 30.0
    min_body_rate: float = 50 * 1024.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None  # "headers" | "body" | None (the app is answering, or idle keep-alive)
        self._started = 0.0
        self._received = 0
        self._paused_for = 0.0
        self._last_check = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # --- phases ------------------------------------------------------------------------------------------------

    def _begin(self, phase: str) -> None:
        self._cancel()
        self._phase = phase
        self._started = self._last_check = self.loop.time()
        self._received = 0
        self._paused_for = 0.0
        self._schedule()

    def _cancel(self) -> None:
        self._phase = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> float:
        if self._phase == "headers":
            return self._started + self.header_timeout
        return self._started + self._paused_for + self.body_timeout + self._received / self.min_body_rate

    def _schedule(self) -> None:
        delay = max(self._deadline() - self.loop.time(), 0.05)
        self._timer = self.loop.call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._phase is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._phase == "body" and self.flow.read_paused:
            # Reading is paused because the app has not taken what arrived: the client is not the slow one.
            self._paused_for += now - self._last_check
        self._last_check = now
        if now < self._deadline():
            self._schedule()
            return
        if self._phase == "headers" and self._received:
            self.transport.write(REQUEST_TIMEOUT)  # no response has started on this connection
        self._phase = None
        self.transport.close()

    # --- uvicorn's hooks ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin("headers")  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != "headers":
            self._begin("headers")  # the next request on a kept-alive connection

    def on_url(self, url: bytes) -> None:
        self._count_header(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value))
        super().on_header(name, value)

    def _count_header(self, size: int) -> None:
        self._received += size
        if self._received > self.max_header_bytes:
            raise HeadersTooLarge()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._begin("body")  # ended by on_message_complete (at once for a request without a body)

    def on_body(self, body: bytes) -> None:
        self._received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._phase is None:
            self._begin("headers")  # uvicorn's keep-alive timeout runs too; the first to fire closes


def deadline_protocol(settings: Settings) -> type[DeadlineProtocol]:
    """The protocol class with the settings' deadlines (uvicorn makes one instance per connection)."""
    return type(
        "ConfiguredDeadlineProtocol",
        (DeadlineProtocol,),
        {
            "header_timeout": float(settings.request_header_timeout_seconds),
            "body_timeout": float(settings.request_body_timeout_seconds),
            "min_body_rate": float(settings.request_body_min_kb_per_second) * 1024,
            "max_header_bytes": int(settings.request_max_header_kb) * 1024,
        },
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options that bound what slow or many clients can hold."""
    return {
        "http": deadline_protocol(settings),
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        # Beyond this many connections (or requests in progress), new requests get 503 at once.
        "limit_concurrency": settings.max_connections or None,
    }
