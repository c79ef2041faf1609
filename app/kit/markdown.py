"""Markdown for untrusted text (model output, prompts, guidelines): no raw HTML, sanitized output."""

from __future__ import annotations

from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

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


def _local_images_only(tag: str, attribute: str, value: str) -> str | None:
    # An image from another host (a tracking pixel in model output, say) loses its address and shows its alt text:
    # the Content-Security-Policy would block it anyway, but the page should not even try.
    if tag == "img" and attribute == "src":
        url = value.strip()
        if url.startswith("//") or url.startswith("\\") or urlsplit(url).scheme or urlsplit(url).netloc:
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
        attribute_filter=_local_images_only,
    )
    return Markup(clean)  # noqa: S704 - sanitized by nh3 just above
