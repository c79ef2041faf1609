"""The API reference page works under the Content-Security-Policy: every script and style it loads comes from this
site and is served, none is inline, and the OpenAPI document it reads is there."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from app.config import ROOT
from app.web.system import SWAGGER_UI


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.inline: list[str] = []
        self.attrs: dict[str, dict[str, str]] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower(): (v or "") for k, v in attrs}
        if "id" in names:
            self.attrs[names["id"]] = names
        if tag == "script":
            self._in_script = True
            if names.get("src"):
                self.scripts.append(names["src"])
        if tag == "link" and "stylesheet" in names.get("rel", "").split():
            self.styles.append(names["href"])
        if tag == "style" or "style" in names or any(name.startswith("on") for name in names):
            self.inline.append(f"<{tag}> {names}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"inline script: {data[:80]!r}")


def _same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//")


def test_the_api_docs_load_only_this_sites_files(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self';" in page.headers["content-security-policy"]
    found = _Assets()
    found.feed(page.text)
    assert not found.inline, found.inline
    assert found.scripts and found.styles
    for url in found.scripts + found.styles:
        assert _same_origin(url), url
        served = client.get(url)
        assert served.status_code == 200, url
        kind = "javascript" if url in found.scripts else "text/css"
        assert kind in served.headers["content-type"], (url, served.headers["content-type"])
    assert f"{SWAGGER_UI}/swagger-ui-bundle.js" in found.scripts
    bundle = client.get(f"{SWAGGER_UI}/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle
    # The page names the OpenAPI document, and it is there.
    openapi_url = found.attrs["swagger-ui"]["data-openapi-url"]
    assert openapi_url == "/openapi.json"
    document = client.get(openapi_url)
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.") and "/api/v1/projects/{project}/import" in spec["paths"]
    assert "/api/docs" not in spec["paths"]


def test_the_vendored_swagger_ui_is_pinned_and_licensed() -> None:
    folder = ROOT / SWAGGER_UI.lstrip("/")
    version = folder.name.removeprefix("swagger-ui-")
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        first = (folder / name).open(encoding="utf-8").readline()
        assert f"swagger-ui-dist {version}" in first and "Apache License 2.0" in first, (name, first)
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert (folder / "NOTICE").is_file() and (folder / "swagger-ui-bundle.js.LICENSE.txt").is_file()
