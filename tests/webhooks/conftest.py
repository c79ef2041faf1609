"""Fixtures for webhooks: a project with an admin, an annotator and tokens; and a real HTTP receiver on 127.0.0.1
that checks each request's signature with the snippet docs/webhooks.md gives receivers.

The receiver is the one stand-in: a real remote system cannot be told to answer 500 on cue. It runs in a thread
of the test process and answers the status codes a test queues (then 200)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.auth.service import create_api_token
from app.config import ROOT, Settings
from app.db import Database
from app.models import User
from tests.conftest import make_settings
from tests.factories import make_items, make_project, make_user


def documented_verifier() -> Callable[[bytes, dict[str, str], str], bool]:
    """``verify_signature`` as docs/webhooks.md writes it (the first python block after "Verifying")."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    block = re.search(r"## Verifying.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/webhooks.md has no receiver snippet"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # the documentation's own code, run as a receiver would run it
    return namespace["verify_signature"]  # type: ignore[no-any-return]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    url: str
    secret: str = ""
    answers: list[int] = field(default_factory=list)  # status codes to give, in turn; then 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    verify = documented_verifier()
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                ok = verify(body, headers, state.secret)
                state.requests.append(Received(headers, body, ok))
                status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The receiver is on loopback: allowed here, as an installation allows its own network with the setting.
    return make_settings(database_url, data_dir=tmp_path / "data", allow_private_webhooks=True)


@dataclass
class World:
    project_id: int
    admin: User
    annotator: User
    outsider: User
    tokens: dict[str, str]


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    with db.session() as s:
        admin = make_user(s, "chief", role="admin")
        annotator = make_user(s, "ann1")
        outsider = make_user(s, "ann2")
        project = make_project(s, "hooked", k=2, overlap=2, members=[annotator, outsider])
        make_items(s, project, 2)
        tokens = {
            "admin": create_api_token(s, user=admin, scope="api", settings=settings)[1],
            "annotator": create_api_token(s, user=annotator, scope="api", settings=settings)[1],
            "outsider": create_api_token(s, user=outsider, scope="api", settings=settings)[1],
            "export": create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1],
        }
        for user in (admin, annotator, outsider):
            s.expunge(user)
        return World(project.id, admin, annotator, outsider, tokens)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
