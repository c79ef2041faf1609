"""Structured logs: with ``PREFSTUDIO_LOG_FORMAT=json`` every log line is one JSON object, and every request
writes one line of its own (``request_line``).

A request's line names its route template (``/projects/{project}/annotate``), never the URL: no path values, no
query string. It carries who asked as numbers only (the user's id and how they came in: cookie or token), never
a header, a cookie, a token, a password or a username. Lines logged while a request is handled carry its
``request_id`` too (a context variable, read by a filter on the handler).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from app.config import Settings

HANDLER_NAME = "prefstudio-json"
REQUEST_LOGGER = "prefstudio.request"
REQUEST_ID_HEADER = "x-request-id"
# A request id a proxy sent is kept when it looks like one (nginx's $request_id, a UUID); anything else is
# replaced, so that nothing a client chose reaches the logs beyond these characters.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
request_log = logging.getLogger(REQUEST_LOGGER)


def request_id_from(header: bytes | None) -> str:
    """The request's id: the proxy's ``X-Request-ID`` when it is plain, else a new random one."""
    if header is not None:
        value = header.decode("latin-1")
        if _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds the request id of the request being handled (if any) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, then the record's extra fields."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler | None:
    """With ``log_format=json``: every record of the process to ``stream`` (stderr) as JSON; uvicorn's own lines
    too, and its access log off (it writes the raw path with its query string; ``request_line`` replaces it).
    Safe to call again (the handler is replaced). Returns the handler, or None in text mode."""
    if settings.log_format != "json":
        return None
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    return handler


def unconfigure_logging(handler: logging.Handler) -> None:
    """Take ``handler`` (from ``configure_logging``) off again (tests; an app stopped inside a longer process)."""
    logging.getLogger().removeHandler(handler)
    logging.getLogger("uvicorn.access").disabled = False


def request_line(fields: dict[str, Any]) -> None:
    """The request's one line: ``fields`` are time-independent facts (route, method, status, duration_ms,
    user_id, auth, request_id)."""
    request_log.info("request", extra=fields)
