"""The Jinja2 environment: autoescape, i18n (gettext), the safe markdown filter, helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from app import i18n
from app.config import ROOT
from app.kit.markdown import render_markdown

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
    autoescape=True,
    extensions=["jinja2.ext.i18n"],
)
# One environment for every language: the callables look up the language of the request being served.
env.install_gettext_callables(  # type: ignore[attr-defined]
    gettext=i18n.gettext, ngettext=i18n.ngettext, pgettext=i18n.pgettext, npgettext=i18n.npgettext, newstyle=True
)
templates = Jinja2Templates(env=env)
env.filters["markdown"] = render_markdown


def compile_templates() -> int:
    """Compile every page template now (Jinja compiles each on first use otherwise); returns how many."""
    names = env.list_templates(extensions=["html"])
    for name in names:
        env.get_template(name)
    return len(names)


def _csrf_token(request: Request) -> str:
    token = getattr(request.state, "csrf_token", None)
    return token or ""


def _csrf_input(request: Request) -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(_csrf_token(request))


def _htmx_headers(request: Request) -> str:
    return json.dumps({"X-CSRF-Token": _csrf_token(request)})


TIME_STYLES = ("relative", "absolute")


def _timeago(value: datetime | None, style: str = "relative") -> Markup | str:
    """A ``<time>`` element: the UTC time as text (what shows without script), which static/js/app.js replaces
    with the viewer's local time in the page's language — relative ("in 12 minutes", "3 hours ago") when
    ``style`` is "relative" and the time is within a day of now, else the date and time — with the full local
    date-time as its title."""
    if value is None:
        return "—"
    if style not in TIME_STYLES:
        raise ValueError(f"timeago style must be one of {TIME_STYLES}, not {style!r}")
    utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return Markup('<time datetime="{}" data-time="{}">{}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), style, utc.strftime("%Y-%m-%d %H:%M UTC")
    )


def _prompt_text(prompt: Any) -> str:
    """A one-line text of a prompt (string or chat messages) for lists."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else ""
    return str(prompt)


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


env.filters["num"] = _num
env.filters["pct"] = _pct
env.globals["csrf_token"] = _csrf_token
env.globals["csrf_input"] = _csrf_input
env.globals["htmx_headers"] = _htmx_headers
env.filters["timeago"] = _timeago
env.filters["prompt_text"] = _prompt_text
env.globals["current_language"] = i18n.current_language
env.globals["languages"] = i18n.LANGUAGES
