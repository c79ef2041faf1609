"""Languages: the catalogs, the language of the request (a context variable), and gettext over both.

The language of a request is, in order: the logged-in user's setting, the ``prefstudio_lang`` cookie
(set by the switcher for anyone), the browser's ``Accept-Language``, English. The middleware sets it
from the cookie and the header; ``get_principal`` overrides it with the user's setting. Templates and
Python code read it through :func:`gettext` and friends, so one Jinja environment serves every language.

Catalogs are the ``.po`` files under ``app/translations``; they are compiled in memory once per process
(a few milliseconds), so there is no ``.mo`` file to fall out of step with its source.
"""

from __future__ import annotations

import gettext as _gettext
from contextvars import ContextVar, Token
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import Request
from starlette.responses import Response

# The languages a user can choose: code (stored in user.language, the cookie and <html lang>) → own name.
LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"
# The catalog of each language (a Babel locale identifier: zh_Hans is Simplified Chinese).
CATALOG_LOCALES: dict[str, str] = {"en": "en", "zh": "zh_Hans"}
COOKIE = "prefstudio_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
DOMAIN = "messages"

_language: ContextVar[str] = ContextVar("prefstudio_language", default=DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language of the request being served (English outside a request)."""
    return _language.get()


def set_language(language: str) -> Token[str]:
    """Serve the rest of this request (this context) in ``language``, one of LANGUAGES."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    return _language.set(language)


def reset_language(token: Token[str]) -> None:
    _language.reset(token)


def normalize(tag: str | None) -> str | None:
    """A language tag or setting ("zh-CN", "zh_Hans", "en-GB", "zh") → one of LANGUAGES, or None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (by q-value, then order), or None.

    Any Chinese (zh, zh-CN, zh-Hans, zh-TW, zh-HK) gets the Simplified Chinese catalog.
    """
    if not header:
        return None
    best: tuple[float, int, str] | None = None
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = normalize(tag)
        if language is None or quality <= 0:
            continue
        candidate = (-quality, index, language)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def choose_language(*, user: str | None = None, cookie: str | None = None, accept_language: str | None = None) -> str:
    """The user's setting, else the cookie, else the browser's preference, else English."""
    return normalize(user) or normalize(cookie) or from_accept_language(accept_language) or DEFAULT_LANGUAGE


def catalog_path(language: str) -> Path:
    return TRANSLATIONS_DIR / CATALOG_LOCALES[language] / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalog of ``language`` (fuzzy entries left out), or no translation at all."""
    path = catalog_path(language)
    if not path.exists():
        return _gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=CATALOG_LOCALES[language], domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def gettext(message: str) -> str:
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(current_language()).pgettext(context, message)


def remember(response: Response, request: Request, language: str) -> None:
    """Keep ``language`` for this browser (the cookie the middleware reads), a year long."""
    response.set_cookie(
        COOKIE,
        language,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return translations(current_language()).npgettext(context, singular, plural, n)
