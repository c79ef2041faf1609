"""HTML: the language switcher (in the page header, the login page included)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth import service
from app.auth.deps import OptionalPrincipal
from app.auth.router import check_anonymous_form, safe_next
from app.i18n import LANGUAGES, remember
from app.i18n.schemas import LanguageForm
from app.kit.errors import Invalid
from app.kit.forms import form_of
from app.kit.htmx import redirect
from app.web.deps import SessionDep

router = APIRouter(tags=["language pages"], include_in_schema=False)


def _back(request: Request, next_url: str) -> str:
    """Where the switcher was: its ``next`` field, else the Referer's path on this site, else the start page."""
    if next_url:
        return safe_next(next_url, default="/")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path:
        return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), default="/")
    return "/"


@router.post("/settings/language")
def choose_language(
    request: Request,
    session: SessionDep,
    principal: OptionalPrincipal,
    form: Annotated[LanguageForm, form_of(LanguageForm)],
) -> Response:
    """Set the interface language: on the user when logged in, and in a cookie for this browser."""
    if principal is None:
        # Anyone may choose, but only from our own page: the login form's double-submit token.
        check_anonymous_form(
            request, form.csrf_token, expired="CSRF token missing or invalid; reload the page and try again"
        )
    # (A logged-in browser's CSRF token was checked by get_principal already.)
    language = form.language
    if language not in LANGUAGES:
        raise Invalid(f"Language must be one of {', '.join(LANGUAGES)}")
    if principal is not None:
        service.set_language(session, user=principal.user, language=language)
    response = redirect(request, _back(request, form.next))
    remember(response, request, language)
    return response
