"""Checks that rendered HTML cannot run anything an untrusted author put in it."""

from __future__ import annotations

from html.parser import HTMLParser

# What our own templates legitimately use; anything else scripted is a leak.
OWN_SCRIPTS = ("/static/js/",)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.disabled_depth: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower(): (v or "") for k, v in attrs}
        inside_disabled = bool(self.disabled_depth)
        if tag == "script" and not names.get("src", "").startswith(OWN_SCRIPTS):
            self.problems.append(f"<script> {names}")
        if tag in ("iframe", "object", "embed", "base", "form") and inside_disabled:
            self.problems.append(f"<{tag}> inside untrusted content")
        for name, value in names.items():
            if name.startswith("on"):
                self.problems.append(f"event handler {name}={value!r} on <{tag}>")
            if name in ("href", "src", "action", "formaction", "xlink:href") and value.strip().lower().startswith(
                ("javascript:", "data:", "vbscript:")
            ):
                self.problems.append(f"{name}={value!r} on <{tag}>")
            if inside_disabled and (name.startswith(("hx-", "data-hx-")) or name == "style"):
                self.problems.append(f"{name} inside untrusted content on <{tag}>")
        if "hx-disable" in names:
            self.disabled_depth.append(tag)
        elif self.disabled_depth and tag not in ("br", "hr", "img", "input"):
            self.disabled_depth.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.disabled_depth:
            self.disabled_depth.pop()


def assert_inert(html: str) -> None:
    parser = _Collector()
    parser.feed(html)
    assert parser.problems == [], parser.problems
