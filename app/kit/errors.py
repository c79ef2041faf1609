"""Errors that services raise; one handler turns them into JSON, a toast or a page."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    headers: dict[str, str] = {}  # extra response headers of this kind of error (read only)

    def __init__(self, detail: Any, *, status_code: int | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class Invalid(AppError):
    status_code = 422


class NotAuthenticated(AppError):
    status_code = 401

    def __init__(self, detail: Any = "Not authenticated") -> None:
        super().__init__(detail)


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404

    def __init__(self, detail: Any = "Not found") -> None:
        super().__init__(detail)


class Conflict(AppError):
    status_code = 409


class TooManyRequests(AppError):
    status_code = 429


class Busy(AppError):
    """A moment's contention that a retry resolves."""

    status_code = 503
    headers = {"Retry-After": "1"}
