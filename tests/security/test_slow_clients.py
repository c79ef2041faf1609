"""Slow clients cannot hold connections: the server as `prefstudio serve` runs it (a real uvicorn on a free port)
closes a connection whose headers or body do not arrive in time, however slowly bytes keep coming."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from app.config import Settings, get_settings
from app.kit.server import DeadlineProtocol, server_options
from tests.conftest import make_settings

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MIN_RATE_KB = 4.0
GIVE_UP = 15.0  # far past every deadline: a connection still open then is held for good


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    return make_settings(
        database_url,
        data_dir=tmp_path / "data",
        request_header_timeout_seconds=HEADER_TIMEOUT,
        request_body_timeout_seconds=BODY_TIMEOUT,
        request_body_min_kb_per_second=MIN_RATE_KB,
        request_max_header_kb=8,
    )


@pytest.fixture
def server(app: FastAPI, settings: Settings) -> Iterator[tuple[str, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **server_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield ("127.0.0.1", port)
    server.should_exit = True
    thread.join(timeout=10)


def _trickle_until_closed(sock: socket.socket, data: bytes, *, every: float) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time, ``every`` seconds apart (then nothing), until the server closes the
    connection; return how long that took and what the server said."""
    start = time.monotonic()
    answer = b""
    position = 0
    # poll, not select: by the time the suite gets here its process may hold descriptors past select's 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while time.monotonic() - start < GIVE_UP:
        if poller.poll(int(every * 1000)):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - start, answer
            if not chunk:
                return time.monotonic() - start, answer
            answer += chunk
            continue
        if position < len(data):
            try:
                sock.sendall(data[position : position + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start, answer
            position += 1
    raise AssertionError(f"the connection was still open after {GIVE_UP} s ({position} bytes sent)")


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        took, answer = _trickle_until_closed(sock, b"", every=0.1)
    assert took < HEADER_TIMEOUT + 2 and answer == b""


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: tuple[str, int]) -> None:
    endless = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    with socket.create_connection(server) as sock:
        took, answer = _trickle_until_closed(sock, endless, every=0.05)
    assert took < HEADER_TIMEOUT + 2, took
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_trickles_in_is_cut_off(server: tuple[str, int]) -> None:
    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    head += b"Content-Length: 100000\r\n\r\n"
    with socket.create_connection(server) as sock:
        sock.sendall(head)
        took, _ = _trickle_until_closed(sock, b"username=" + b"a" * 100_000, every=0.05)
    # About 20 bytes a second: the allowance grows by 1/200 s a byte, so it ends a little after BODY_TIMEOUT.
    assert took < BODY_TIMEOUT + 2, took


def test_oversized_headers_are_refused(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        took, answer = _trickle_until_closed(sock, b"", every=0.1)
    assert answer.startswith(b"HTTP/1.1 400 ") and took < 2


def _request(sock: socket.socket, raw: bytes) -> bytes:
    sock.sendall(raw)
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith((b"}", b">")):
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer


def test_normal_clients_are_served(server: tuple[str, int]) -> None:
    """Control: requests on one kept-alive connection, and a body far larger than the time allowance would let
    through at the trickle's pace, sent at an ordinary speed."""
    with socket.create_connection(server) as sock:
        sock.settimeout(10)
        for _ in range(3):
            assert _request(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        body = b'{"name": "' + b"n" * 400_000 + b'"}'
        raw = b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        raw += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        assert _request(sock, raw).startswith(b"HTTP/1.1 401 ")  # read whole, then refused: no token


def test_serve_runs_uvicorn_with_the_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import _serve

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "dev")
    monkeypatch.setenv("PREFSTUDIO_REQUEST_BODY_TIMEOUT_SECONDS", "12")
    get_settings.cache_clear()
    try:
        _serve("127.0.0.1", 8000)
    finally:
        get_settings.cache_clear()
    protocol = calls[-1]["http"]
    assert isinstance(protocol, type) and issubclass(protocol, DeadlineProtocol)
    assert protocol.body_timeout == 12 and protocol.header_timeout == 20
    assert calls[-1]["timeout_keep_alive"] == 5 and calls[-1]["limit_concurrency"] == 1000
