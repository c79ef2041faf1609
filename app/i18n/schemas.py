"""The language switcher's form."""

from __future__ import annotations

from pydantic import Field

from app.kit.forms import BlankIsMissingForm


class LanguageForm(BlankIsMissingForm):
    language: str = Field(max_length=16)
    csrf_token: str = Field("", max_length=200)  # the login page's double-submit token, when not logged in
    next: str = Field("", max_length=2000)  # where to go back to; else the Referer
