"""The board of people's requests in flight, shared by the processes of one data directory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.kit import activity
from app.kit.activity import ActivityMiddleware, board_for

REPORTER = """
import sys
from pathlib import Path
from app.kit.activity import board_for
board = board_for(Path(sys.argv[1]))
for line in sys.stdin:
    getattr(board, line.strip())()
    print("ok", flush=True)
"""


class Reporter:
    """A server process of its own that enters and leaves requests when told."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", REPORTER, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def do(self, what: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "ok\n"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def test_requests_in_flight_in_other_processes_are_seen_and_a_dead_process_frees_its_slot(tmp_path: Path) -> None:
    board = board_for(tmp_path)
    first, second = Reporter(tmp_path), Reporter(tmp_path)
    try:
        assert board.in_flight() == 0
        first.do("enter")
        first.do("enter")
        second.do("enter")
        assert board.in_flight() == 3
        first.do("leave")
        assert board.in_flight() == 2
        first.kill()  # killed with one request in flight: its slot still says so (until it is stale or retaken)
        second.do("leave")
        assert board.in_flight() == 1
        third = Reporter(tmp_path)  # takes the dead process's slot, and clears it
        try:
            third.do("enter")
            assert board.in_flight() == 1
            third.do("leave")
            assert board.in_flight() == 0
        finally:
            third.kill()
    finally:
        first.kill()
        second.kill()


def test_a_count_that_has_not_changed_for_long_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    board = board_for(tmp_path)
    board.enter()
    try:
        assert board.in_flight() == 1
        monkeypatch.setattr(activity, "STALE_NS", 0)
        assert board.in_flight() == 0
    finally:
        board.leave()


def test_giving_way_waits_while_a_request_is_in_flight_and_for_no_longer_than_allowed(tmp_path: Path) -> None:
    board = board_for(tmp_path)
    assert board.give_way(5.0) == 0.0  # nothing in flight: no wait
    board.enter()
    try:
        started = time.monotonic()
        waited = board.give_way(0.05)
        assert 0.05 <= waited <= time.monotonic() - started
        assert activity.pacer(tmp_path, 0) is None  # 0: never wait
    finally:
        board.leave()


def test_a_board_that_cannot_be_made_reports_nothing_and_nobody_waits(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    board = board_for(not_a_directory)
    board.enter()  # a server process whose data directory is unusable serves as before
    assert board.in_flight() == 0
    assert board.give_way(5.0) == 0.0
    board.leave()


def test_the_middleware_counts_requests_but_not_exports_or_static_files(tmp_path: Path) -> None:
    board = board_for(tmp_path)
    seen: dict[str, int] = {}

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen[scope["path"]] = board.in_flight()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    async def run() -> None:
        transport = httpx.ASGITransport(app=ActivityMiddleware(inner, data_dir=tmp_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/api/v1/projects/p/next", "/api/v1/projects/p/export.jsonl", "/static/app.js"):
                assert (await client.get(path)).status_code == 200

    asyncio.run(run())
    assert seen == {"/api/v1/projects/p/next": 1, "/api/v1/projects/p/export.jsonl": 0, "/static/app.js": 0}
    assert board.in_flight() == 0


def test_the_app_reports_its_requests_on_the_board_of_its_data_directory(app: FastAPI, settings: Settings) -> None:
    layers = [m for m in app.user_middleware if m.cls is ActivityMiddleware]
    assert len(layers) == 1 and layers[0].kwargs == {"data_dir": settings.data_dir}
