"""The registry page in headless Chromium: the health badge arrives by htmx, and the forms work with htmx on."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db import Database
from app.models import RegisteredModel
from tests.browser import chromium, serve
from tests.factories import PASSWORD
from tests.registry.conftest import Registry


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_loads_and_forms_post(app: FastAPI, reg: Registry, db: Database, browser: Any) -> None:
    with db.session() as s:
        model = RegisteredModel(
            project_id=reg.project_id, name="down-one", base_url=f"http://127.0.0.1:{closed_port()}", served_name="x"
        )
        s.add(model)
        s.flush()
        mid = model.id
    with serve(app) as base:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(base + "/login")
        page.fill("#username", reg.admin.username)
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
        page.goto(base + "/projects/dpo")
        page.click("#models-link")
        page.wait_for_selector(f"#health-{mid} .badge.bad")  # asked by htmx once the page loaded
        page.fill("#add-model #name", "by-hand")
        page.click("#add-model button[type=submit]")
        page.wait_for_selector("text=by-hand")
        page.click(f"#model-{mid} form.inline button")  # delete
        page.wait_for_function(f"!document.querySelector('#model-{mid}')")
        page.close()
    with db.session(write=False) as s:
        assert list(s.scalars(select(RegisteredModel.name))) == ["by-hand"]
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e]
