"""Tokens: a copy button beside a fresh token, and ready-to-paste snippets with this server's real URL (curl for the
export, ``prefstudio train`` on the Training page) that work as pasted."""

from __future__ import annotations

import inspect
import re
import shlex
from typing import Any

import httpx

from app.db import Database
from app.training.cli import train_command
from tests.factories import make_item, make_project, make_user


def _setup(db: Database) -> None:
    with db.session() as s:
        boss = make_user(s, "boss", role="admin")
        project = make_project(s, "tok", name="Token project", members=[boss])
        make_item(s, project, "a prompt")
        s.commit()


def _clipboard(page: Any, base: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)


def _curl(snippet: str) -> tuple[str, dict[str, str]]:
    """The URL and headers of a curl command as a shell would read it."""
    words = shlex.split(snippet)
    assert words[0] == "curl"
    headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
    url = next(w for w in words if w.startswith("http"))
    return url, headers


def test_a_new_export_token_copies_and_its_curl_snippet_downloads(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    _clipboard(page, base)
    page.goto(f"{base}/projects/tok/export")
    before = page.inner_text("#export-snippet")
    assert f"{base}/api/v1/projects/tok/export.jsonl?" in before and "$PREFSTUDIO_TOKEN" in before

    page.fill("#tokens input[name=name]", "cluster")
    page.click("#tokens button[type=submit]:text('Create token')")
    token_el = page.locator("#new-export-token")
    token_el.wait_for()
    token = token_el.inner_text().strip()
    page.click("#tokens button[data-copy='#new-export-token']")
    page.wait_for_function("t => navigator.clipboard.readText().then(x => x === t)", arg=token)
    assert page.evaluate("navigator.clipboard.readText()") == token

    snippet = page.inner_text("#export-snippet")
    url, headers = _curl(snippet)
    assert url.startswith(f"{base}/api/v1/projects/tok/export.jsonl?") and headers["Authorization"] == f"Bearer {token}"
    answer = httpx.get(url, headers=headers)  # the snippet works as pasted
    assert answer.status_code == 200, answer.text
    page.click("#tokens button[data-copy='#export-snippet']")
    page.wait_for_function("s => navigator.clipboard.readText().then(x => x === s)", arg=snippet.strip())
    shots(page, "export-token-copy-snippet")


def test_the_training_page_shows_a_train_command_for_this_server(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/tok/training")
    snippet = page.inner_text("#train-snippet")
    command = snippet[snippet.index("prefstudio train") :]
    words = shlex.split(command, comments=True)
    assert words[:2] == ["prefstudio", "train"]
    assert words[words.index("--url") + 1] == base
    options = {"--" + name.replace("_", "-") for name in inspect.signature(train_command).parameters}
    used = {w for w in words if w.startswith("--")}
    assert used <= options, used - options  # only options the command defines
    assert re.search(r"^export PREFSTUDIO_TOKEN=", snippet, re.M)  # the CLI reads the token from there
    shots(page, "training-snippet")


def test_a_new_api_token_has_a_copy_button(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    _setup(db)
    base = signed_in(page, "boss")
    _clipboard(page, base)
    page.goto(f"{base}/account/tokens")
    page.fill("input[name=name]", "script")
    page.click("button[type=submit]:text('Create token')")
    token = page.locator("#new-api-token").inner_text().strip()
    page.click("button[data-copy='#new-api-token']")
    page.wait_for_function("t => navigator.clipboard.readText().then(x => x === t)", arg=token)
    url, headers = _curl(page.inner_text("#api-snippet"))
    assert url == f"{base}/api/v1/projects" and httpx.get(url, headers=headers).status_code == 200
    shots(page, "account-token-copy")
