"""Images in untrusted markdown: none from this site (a GET there runs with the reader's session), none from other
hosts unless their origin is in the allow-list setting; every other image shows as a link, ``data:`` images as
their alt text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.kit.markdown import parse_origins, render_markdown, set_image_origins
from app.main import create_app
from app.models import User
from tests.conftest import make_settings
from tests.factories import make_item, make_project, make_user

SAME_SITE = [
    "![x](/projects/p/generation/health)",
    "![x](projects/p/generation/health)",
    "![x](./health)",
    "![x](../p/generation/health)",
    "![x](?bootstrap=1)",
    "![x](//testserver/projects/p/generation/health)",
    "![x](http://testserver/projects/p/generation/health)",
    "![x](&#47;projects/p/generation/health)",
    "![x][r]\n\n[r]: /projects/p/generation/health",
    "![x](/static/favicon.svg)",
]


@pytest.fixture(autouse=True)
def _no_allowed_origins() -> Iterator[None]:
    set_image_origins(frozenset())
    yield
    set_image_origins(frozenset())


@pytest.mark.parametrize("text", SAME_SITE)
def test_an_image_on_this_site_becomes_a_link(text: str) -> None:
    html = str(render_markdown(text))
    assert "<img" not in html, html
    assert re.search(r'<a href="[^"]+" rel="noopener noreferrer nofollow">x</a>', html), html


def test_foreign_and_data_images_are_not_shown_by_default() -> None:
    foreign = str(render_markdown("![chart](https://img.example.org/c.png)"))
    assert "<img" not in foreign
    assert '<a href="https://img.example.org/c.png" rel="noopener noreferrer nofollow">chart</a>' in foreign
    for text in ("![dot](data:image/png;base64,iVBORw0KGgo=)", "![dot](DATA:image/gif;base64,R0lGODlh)"):
        html = str(render_markdown(text))
        assert "<img" not in html and "data:" not in html.lower() and "[dot]" in html, html


def test_only_the_allowed_origins_show_images() -> None:
    set_image_origins(parse_origins("https://img.example.org, http://cdn.example.com:8080"))
    shown = {
        "![a](https://img.example.org/a.png)": 'src="https://img.example.org/a.png"',
        "![a](https://IMG.example.org:443/a.png)": 'src="https://IMG.example.org:443/a.png"',
        "![a](http://cdn.example.com:8080/a.png)": 'src="http://cdn.example.com:8080/a.png"',
    }
    for text, src in shown.items():
        assert src in str(render_markdown(text)), text
    for text in (
        "![a](http://img.example.org/a.png)",  # another scheme: another origin
        "![a](https://img.example.org.evil.example/a.png)",
        "![a](https://img.example.org@evil.example/a.png)",
        "![a](https://user:pw@img.example.org/a.png)",
        "![a](https://img.example.org:8443/a.png)",
        "![a](//img.example.org/a.png)",
        "![a](/projects/p/generation/health)",
    ):
        assert "<img" not in str(render_markdown(text)), text


@pytest.mark.parametrize(
    "value", ["img.example.org", "ftp://img.example.org", "https://img.example.org/images", "https://u@img.example.org"]
)
def test_an_allow_list_entry_must_be_an_origin(value: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        parse_origins(value)


def test_an_admin_viewing_a_candidate_makes_no_request_to_the_app(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        root = make_user(s, "root", role="admin")
        project = make_project(s, "p", k=2, members=[root])
        item = make_item(s, project, "hi", candidates=["![x](/projects/p/generation/health)", "fine"])
        item_id = item.id
    login_as(root)
    page = client.get(f"/projects/p/items/{item_id}")
    assert page.status_code == 200
    assert "/projects/p/generation/health" in page.text  # shown, as a link
    assert not re.search(r"<img[^>]*generation/health", page.text)


def test_allowed_origins_reach_the_content_security_policy(database_url: str, tmp_path: Path) -> None:
    settings: Settings = make_settings(
        database_url, data_dir=tmp_path / "data", markdown_image_origins="https://img.example.org"
    )
    app = create_app(settings)
    try:
        with TestClient(app) as c:
            csp = c.get("/login").headers["content-security-policy"]
        assert "img-src 'self' data: https://img.example.org;" in csp
        assert str(render_markdown("![a](https://img.example.org/a.png)")).startswith("<p><img")
    finally:
        app.state.db.dispose()
    bad = make_settings(database_url, data_dir=tmp_path / "data", markdown_image_origins="img.example.org")
    with pytest.raises(ValueError, match="origin"):
        create_app(bad)
