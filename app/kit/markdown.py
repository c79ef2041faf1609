"""Markdown for untrusted text (model output, prompts, guidelines): no raw HTML, sanitized output."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape

_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table").enable("strikethrough")
)

_TAGS = {
    "p",
    "br",
    "hr",
    "em",
    "strong",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "img",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "code": {"class"}, "ol": {"start"}}


# Origins (scheme://host[:port]) whose images untrusted text may show; set from the settings when the app starts.
_image_origins: frozenset[str] = frozenset()


def parse_origins(value: str) -> frozenset[str]:
    """``"https://a.example, https://b.example:8443"`` → the normalised origins; anything else is an error."""
    origins = set()
    for part in value.split(","):
        entry = part.strip()
        if not entry:
            continue
        origin = _origin(entry)
        if origin is None or urlsplit(entry).path not in ("", "/"):
            raise ValueError(f"not an http(s) origin (scheme://host[:port]): {entry!r}")
        origins.add(origin)
    return frozenset(origins)


def set_image_origins(origins: frozenset[str]) -> None:
    global _image_origins
    _image_origins = origins


def _origin(url: str) -> str | None:
    """The origin of an absolute http(s) URL without credentials, else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{parts.hostname}" + (f":{port}" if port is not None and port != default else "")


def _image_allowed(src: str) -> bool:
    # Never a path of this site (relative, absolute or protocol-relative): a GET there would run with the reader's
    # session. Only an absolute URL on an allowed origin.
    return _origin(src) in _image_origins


def _render_image(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """An image not on an allowed origin becomes a link to it (``data:`` images: their alt text only)."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if _image_allowed(src):
        return self.image(tokens, idx, options, env)
    alt = self.renderInlineAsText(token.children or [], options, env)
    if src.lower().startswith("data:"):
        return escape(f"[{alt or 'image'}]")
    return f'<a href="{escape(src)}">{escape(alt or src)}</a>'


_md.add_render_rule("image", _render_image)


def _allowed_images_only(tag: str, attribute: str, value: str) -> str | None:
    # The renderer above already turned other images into links; this holds whatever reaches the sanitizer.
    if tag == "img" and attribute == "src" and not _image_allowed(value):
        return None
    return value


def render_markdown(text: str | None) -> Markup:
    """Render markdown to HTML that cannot run script, load foreign frames or carry htmx attributes."""
    if not text:
        return Markup("")
    html = _md.render(text)
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        attribute_filter=_allowed_images_only,
    )
    return Markup(clean)  # noqa: S704 - sanitized by nh3 just above
