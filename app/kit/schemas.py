"""Shared pydantic bases."""

from __future__ import annotations

import re
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.responses import Response

# Row ids are INTEGER columns (32 bits on PostgreSQL): a larger number in a path, query or body is a 422 here,
# not an "integer out of range" from the database (a 500).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Interval(ge=0, le=MAX_ROW_ID)]

# Halves of a UTF-16 pair on their own: JSON's "\ud800" escape makes them, but no UTF-8 text (database, page,
# JSON answer) can hold one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on both databases (PostgreSQL refuses NUL), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if _LONE_SURROGATE.search(value):
        return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not valid Unicode"
    return None


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def shown(value: str) -> str:
    """``value`` safe to echo in an answer or a page: lone surrogates written as escapes."""
    return value.encode("utf-8", "backslashreplace").decode()


# Text that both databases store as given (no NUL, no lone surrogate); the error names the field.
StoredText = Annotated[str, AfterValidator(_storable)]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]] | dict[str, object]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses: each is JSON ``{"detail": ...}``."""
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in codes}


_ERROR_TEXT = {
    400: "The body could not be read (not UTF-8, say)",
    401: "Not authenticated: no, an unknown or a revoked token",
    403: "Not allowed for this user (admins only), or a cookie request without its CSRF token",
    404: "No such object, or one in a project the caller may not see",
    409: "Conflicts with the current state (a stale version, a used key, a lapsed lease)",
    413: "Request body too large",
    422: "Invalid input; a validation error lists each problem",
}
# What any /api/v1 route may answer (authentication, CSRF and the body limit apply to every request).
API_ERROR_RESPONSES = error_responses(400, 401, 403, 404, 413, 422)


class Message(BaseModel):
    detail: str


def json_out(model: BaseModel, *, status_code: int = 200) -> Response:
    """``model`` as a JSON response, for a busy route whose ``response_model`` is the model's class.

    Handed a Response, FastAPI neither validates the answer again (a model built here is valid already) nor, for
    a ``def`` route, sends that validation to a worker thread of its own: one thread hop less for the request.
    The bytes are what FastAPI would send."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
