"""How many live exports run at once: at most ``export_max_concurrent`` in this server process and
``export_max_per_token`` per caller (an export token, or an admin); beyond that 503 / 429 with ``Retry-After``.

Each live export runs processes of its own (``app.export.stream``), ~70 MB each, so unread downloads must not
pile up. A slot is held by the response and given back when it ends, however it ends: the body sent, the export
failed, or the client went away (``SlotStreamingResponse``). Snapshot files are not counted: serving a finished
file takes no process and next to no memory.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.kit.errors import Busy, TooManyRequests

RETRY_AFTER_S = 5
_made = threading.Lock()


class ExportsBusy(Busy):
    headers = {"Retry-After": str(RETRY_AFTER_S)}


class CallerBusy(TooManyRequests):
    headers = {"Retry-After": str(RETRY_AFTER_S)}


class ExportSlots:
    """The live exports of this process, in all and per caller."""

    def __init__(self, *, max_total: int, max_per_caller: int) -> None:
        self.max_total = max_total
        self.max_per_caller = max_per_caller
        self._lock = threading.Lock()
        self._total = 0
        self._by_caller: Counter[str] = Counter()

    def take(self, *, caller: str | None) -> Slot:
        """A slot for one export of ``caller``; ExportsBusy (503) or CallerBusy (429) when none is free."""
        with self._lock:
            if self._total >= self.max_total:
                raise ExportsBusy("The server is running as many exports as it may; try again in a few seconds")
            if caller is not None and self._by_caller[caller] >= self.max_per_caller:
                raise CallerBusy(
                    f"At most {self.max_per_caller} exports at once per token; wait for one to end and try again"
                )
            self._total += 1
            if caller is not None:
                self._by_caller[caller] += 1
        return Slot(self, caller)

    def _give_back(self, caller: str | None) -> None:
        with self._lock:
            self._total -= 1
            if caller is not None:
                self._by_caller[caller] -= 1
                if self._by_caller[caller] <= 0:
                    del self._by_caller[caller]

    def in_use(self) -> int:
        with self._lock:
            return self._total


class Slot:
    """One export's place; ``release`` is idempotent."""

    def __init__(self, slots: ExportSlots, caller: str | None) -> None:
        self._slots = slots
        self._caller = caller
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._slots._give_back(self._caller)


def slots_of(app: FastAPI) -> ExportSlots:
    """The app's export slots (made on first use), with the limits of its current settings."""
    settings = app.state.settings
    with _made:
        slots: ExportSlots | None = getattr(app.state, "export_slots", None)
        if slots is None:
            slots = app.state.export_slots = ExportSlots(
                max_total=settings.export_max_concurrent, max_per_caller=settings.export_max_per_token
            )
    slots.max_total = settings.export_max_concurrent
    slots.max_per_caller = settings.export_max_per_token
    return slots


class SlotStreamingResponse(StreamingResponse):
    """A streamed export that gives its slot back when the response ends, however it ends, after closing the
    body (which stops the export's processes), even if the body was never started."""

    def __init__(self, content: Any, *, slot: Slot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                close = getattr(self.body_iterator, "aclose", None)
                if close is not None:
                    with anyio.CancelScope(shield=True):  # a client that went away cancelled the response
                        await close()
            finally:
                self.slot.release()
