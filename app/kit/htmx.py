"""htmx request details and the page-or-fragment / redirect-after-POST conventions."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from app.templating import templates


def is_htmx(request: Request) -> bool:
    """True for an htmx request that is not a history restore (those need the whole page)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def render(
    request: Request,
    page: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The whole page, or only ``fragment`` when htmx asks; always ``Vary: HX-Request``."""
    name = fragment if fragment and is_htmx(request) else page
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
    response.headers["Vary"] = "HX-Request"
    return response


def redirect(request: Request, url: str) -> Response:
    """After a POST: 303 for a plain form, 200 + HX-Redirect for htmx."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url, "Vary": "HX-Request"})
    return RedirectResponse(url, status_code=303, headers={"Vary": "HX-Request"})
