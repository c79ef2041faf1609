"""The live export, made in a process of its own at a lower CPU priority and relayed by the web server.

Making a million pairs is a minute of pure Python. In a web server's process it would hold the interpreter
lock against every annotator that process serves (a next-item or a submit waiting behind it for tens of
milliseconds per database round trip); in its own process, niced, it takes only what the annotators leave of
the CPUs. The web server relays 1 MB blocks from a pipe, which costs it next to nothing.

The child reads in a transaction of its own (REPEATABLE READ on PostgreSQL: one consistent view for the whole
file). If the client goes away the child is stopped; if the child fails, the response is aborted (the
client sees the chunked body end without its last chunk, as with any export that fails mid-stream) and the
error is logged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import AsyncIterator, Iterator
from multiprocessing.connection import Connection
from typing import Any

import anyio

from app.config import Settings
from app.db import Database
from app.export.schemas import ExportFilter

NICE = 10  # the export yields the CPU to annotators' requests
BLOCK_BYTES = 1 << 20
DATA, END, ERROR = b"D", b".", b"E"

_context: Any = None


class ExportFailed(RuntimeError):
    """The export process failed or died after the response began: the response is aborted."""


def _processes() -> Any:
    """A forkserver context with the export code preloaded: starting a child costs milliseconds, not the
    second a fresh interpreter needs to import the app (and it inherits no database connections)."""
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["app.export.service", "app.db"])
        _context = context
    return _context


def blocks(
    db: Database, *, project_id: int, filt: ExportFilter, secret: str, block_bytes: int = BLOCK_BYTES
) -> Iterator[bytes]:
    """The export's lines in blocks of about ``block_bytes``, read in a session of its own."""
    from app.export import service
    from app.models import Project

    with db.session(write=False) as s:
        if db.is_postgres:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        project = s.get(Project, project_id)
        assert project is not None
        rules = service.resolve(s, project=project, filt=filt, secret=secret)
        buffer: list[bytes] = []
        size = 0
        for line in service.iter_jsonl(s, rules=rules):
            buffer.append(line)
            size += len(line)
            if size >= block_bytes:
                yield b"".join(buffer)
                buffer, size = [], 0
        if buffer:
            yield b"".join(buffer)


def _produce(
    out: Connection, settings: dict[str, Any], project_id: int, filt: dict[str, Any], block_bytes: int
) -> None:
    """The child: make the export and send it block by block, then END (or ERROR and the reason)."""
    from app.db import make_database

    with contextlib.suppress(OSError):
        os.nice(NICE)
    config = Settings.model_validate(settings)
    db = make_database(config)
    try:
        filt_ = ExportFilter.model_validate(filt)
        secret = config.secret_key or ""
        for block in blocks(db, project_id=project_id, filt=filt_, secret=secret, block_bytes=block_bytes):
            out.send_bytes(DATA + block)
        out.send_bytes(END)
    except (BrokenPipeError, ConnectionResetError):  # the web server stopped reading: the client went away
        pass
    except Exception as error:
        with contextlib.suppress(OSError):
            out.send_bytes(ERROR + f"{type(error).__name__}: {error}".encode())
    finally:
        out.close()
        db.dispose()


async def relay(
    settings: Settings, *, project_id: int, filt: ExportFilter, block_bytes: int = BLOCK_BYTES
) -> AsyncIterator[bytes]:
    """The export's bytes as the child makes them; the child is stopped when the response ends early."""
    context = _processes()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_produce,
        args=(sender, settings.model_dump(mode="json"), project_id, filt.model_dump(mode="json"), block_bytes),
        name=f"export-{project_id}",
        daemon=True,
    )
    await anyio.to_thread.run_sync(child.start)
    sender.close()
    try:
        while True:
            try:
                message: bytes = await anyio.to_thread.run_sync(receiver.recv_bytes)
            except EOFError:
                raise ExportFailed(f"export of project {project_id}: the export process ended early") from None
            tag, body = message[:1], message[1:]
            if tag == END:
                return
            if tag == ERROR:
                raise ExportFailed(f"export of project {project_id} failed: {body.decode(errors='replace')}")
            yield body
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        await anyio.to_thread.run_sync(child.join)
