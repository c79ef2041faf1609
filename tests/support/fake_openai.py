"""A small OpenAI-compatible server for the faults a real vLLM cannot be made to produce on cue.

Each request to /v1/chat/completions or /v1/completions takes the next action from ``script`` (or
``default`` when the script is used up): "ok", "503", "429", "hang" (never answers), "drop" (sends half a
response, then closes the connection), "slow" (answers after ``slow_s``). Answers carry n distinct texts.
``models`` is what /v1/models answers and ``rewrite`` may turn a completion into any JSON value (answers a real
server would not give); ``seen`` records the method, path and headers of every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class FakeOpenAI:
    def __init__(self, *, default: str = "ok", slow_s: float = 0.2) -> None:
        self.script: deque[str] = deque()
        self.default = default
        self.slow_s = slow_s
        self.requests: list[dict[str, Any]] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.models: Any = {"data": [{"id": "fake", "max_model_len": 2048}]}
        self.rewrite: Callable[[dict[str, Any]], Any] | None = None
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._server:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append((method, path, headers))
                if not await self._respond(method, path, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable", 404: "Not Found"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        writer.write(head.encode() + data)
        await writer.drain()

    async def _respond(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if path == "/v1/models":
            await self._send(writer, 200, self.models)
            return True
        if not path.startswith("/v1/") or method != "POST":
            await self._send(writer, 404, {"detail": "no"})
            return True
        request = json.loads(body)
        self.requests.append(request)
        action = self.script.popleft() if self.script else self.default
        if action in ("503", "429"):
            await self._send(writer, int(action), {"error": "busy"})
            return True
        if action == "hang":
            await asyncio.sleep(3600)
            return False
        if action == "slow":
            await asyncio.sleep(self.slow_s)
        payload: Any = self._completion(request, path)
        if self.rewrite is not None:
            payload = self.rewrite(payload)
        if action == "drop":
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                + data[: len(data) // 2]
            )
            await writer.drain()
            return False
        await self._send(writer, 200, payload)
        return True

    def _completion(self, request: dict[str, Any], path: str) -> dict[str, Any]:
        n = int(request.get("n", 1))
        seed = request.get("seed", 0)
        prompt = json.dumps(request.get("messages") or request.get("prompt"))
        choices = []
        for i in range(n):
            text = f"answer {i} (seed {seed}, t={request.get('temperature')}) to {prompt[:40]}"
            entry: dict[str, Any] = {"index": i, "finish_reason": "length" if i == n - 1 else "stop"}
            if "chat" in path:
                entry["message"] = {"role": "assistant", "content": text}
                entry["logprobs"] = {"content": [{"token": t} for t in text.split()]}
            else:
                entry["text"] = text
                entry["logprobs"] = {"tokens": text.split()}
            choices.append(entry)
        return {
            "id": "x",
            "model": request.get("model", "fake"),
            "choices": choices,
            "usage": {"prompt_tokens": 11, "completion_tokens": 7 * n, "total_tokens": 11 + 7 * n},
        }
