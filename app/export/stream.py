"""The export, made in processes of their own at a lower CPU priority and relayed (by the web server, or the CLI).

Making a million pairs is a minute of pure Python. In a web server's process it would hold the interpreter
lock against every annotator that process serves (a next-item or a submit waiting behind it for tens of
milliseconds per database round trip); in processes of its own, niced, it takes only what the annotators leave
of the CPUs — and on PostgreSQL two of them make alternate chunks of items at once. The parent relays 1 MB
blocks from pipes in order, which costs it next to nothing.

The children read in transactions of their own (REPEATABLE READ on PostgreSQL, all on the parent's snapshot:
one consistent view for the whole file). If the client goes away the children are stopped; if one fails, the
response is aborted (the client sees the chunked body end without its last chunk, as with any export that
fails mid-stream) and the error is logged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator
from multiprocessing.connection import Connection
from typing import Any

import anyio
import orjson

from app.config import Settings
from app.db import export_snapshot, import_snapshot
from app.export.schemas import ExportFilter
from app.kit import activity

NICE = 10  # the export yields the CPU to annotators' requests
PROCESSES = 2  # export processes on PostgreSQL: making pairs is pure Python, one CPU per process
BLOCK_BYTES = 1 << 20
# Items per chunk: a child holds a chunk's JSONL (about 1.4 KB a pair, ~5 pairs an item at k = 4) until the
# parent takes it, so smaller chunks keep each child small.
CHUNK_ITEMS = 500
DATA, NEXT, END, ERROR = b"D", b">", b".", b"E"

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


def _produce(
    out: Connection,
    settings: dict[str, Any],
    project_id: int,
    filt: dict[str, Any],
    excluded: list[int],
    key: str,
    snapshot: str | None,
    ranges: list[tuple[int, int | None]],
    block_bytes: int,
) -> None:
    """A child: make the JSONL of its item ranges and send each range's as DATA blocks and NEXT, then END and
    what each rule dropped (or ERROR and the reason)."""
    from app.db import make_database
    from app.export import service
    from app.models import Project

    with contextlib.suppress(OSError):
        os.nice(NICE)
    config = Settings.model_validate(settings)
    db = make_database(config)
    try:
        with db.session(write=False) as s:
            if db.is_postgres:
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                if snapshot is not None:  # the parent's view of the data, so every part of the file agrees
                    import_snapshot(s.connection(), snapshot)
            project = s.get(Project, project_id)
            assert project is not None
            rules = service.resolve(
                s,
                project=project,
                filt=ExportFilter.model_validate(filt),
                key=bytes.fromhex(key),
                excluded=set(excluded),
            )
            drops: Counter[str] = Counter()
            pace = activity.pacer(config.data_dir, config.export_yield_ms / 1000)
            for part in service.jsonl_of_ranges(s, rules=rules, ranges=ranges, drops=drops, pace=pace):
                for at in range(0, len(part), block_bytes):
                    out.send_bytes(DATA + part[at : at + block_bytes])
                out.send_bytes(NEXT)
        out.send_bytes(END + orjson.dumps(drops))
    except (BrokenPipeError, ConnectionResetError):  # the parent stopped reading: the client went away
        pass
    except Exception as error:
        with contextlib.suppress(OSError):
            out.send_bytes(ERROR + f"{type(error).__name__}: {error}".encode())
    finally:
        out.close()
        db.dispose()


def export_blocks(
    settings: Settings,
    *,
    project_id: int,
    filt: ExportFilter,
    processes: int | None = None,
    block_bytes: int = BLOCK_BYTES,
    chunk_items: int | None = None,
    drops: Counter[str] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    excluded: set[int] | None = None,
    key: bytes | None = None,
) -> Generator[bytes, None, None]:
    """The export's bytes in order, made by ``processes`` niced child processes (default: ``PROCESSES`` on
    PostgreSQL, one on SQLite), each making every n-th chunk of items; ``drops`` gets what each rule dropped,
    ``on_chunk(done, total)`` is called after each chunk; ``excluded``: the annotators the caller's ``resolve``
    of this filter left out (its names and thresholds are then not evaluated again; without it, the filter may
    name annotators as an admin may); ``key``: the pseudonym key, if the caller has it. The children are stopped
    when this generator is closed early.

    On PostgreSQL this process holds a REPEATABLE READ transaction whose snapshot every child imports, so the
    file is one consistent view however many processes make it. Each child sends a chunk only once it has made
    it all, so none waits for another's chunk while it could be making its own.
    """
    from app.db import make_database
    from app.export import pseudonyms, service
    from app.models import Project

    db = make_database(settings)
    children: list[Any] = []
    receivers: list[Connection] = []
    try:
        key = key if key is not None else pseudonyms.pseudonym_key(settings.data_dir)
        with db.session(write=False) as s:
            snapshot: str | None = None
            if db.is_postgres:
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                snapshot = export_snapshot(s)
            project = s.get(Project, project_id)
            if project is None:
                raise ExportFailed(f"export of project {project_id} failed: no such project")
            rules = service.resolve(s, project=project, filt=filt, key=key, by_admin=True, excluded=excluded)
            starts = service.chunk_starts(s, project=project, size=chunk_items or CHUNK_ITEMS)
            ranges: list[tuple[int, int | None]] = list(zip(starts, [*starts[1:], None], strict=False)) or [(0, None)]
            wanted = processes if processes is not None else (PROCESSES if db.is_postgres else 1)
            n = max(1, min(wanted, len(ranges)))
            context = _processes()
            for w in range(n):
                receiver, sender = context.Pipe(duplex=False)
                child = context.Process(
                    target=_produce,
                    args=(
                        sender,
                        settings.model_dump(mode="json"),
                        project_id,
                        filt.model_dump(mode="json"),
                        sorted(rules.excluded),
                        key.hex(),
                        snapshot,
                        ranges[w::n],
                        block_bytes,
                    ),
                    name=f"export-{project_id}-{w}",
                    daemon=True,
                )
                child.start()
                sender.close()
                children.append(child)
                receivers.append(receiver)
            for i in range(len(ranges)):
                while (message := _receive(receivers[i % n], project_id))[:1] == DATA:
                    yield message[1:]
                if message[:1] != NEXT:
                    raise ExportFailed(f"export of project {project_id}: unexpected message {message[:1]!r}")
                if on_chunk is not None:
                    on_chunk(i + 1, len(ranges))
            for receiver in receivers:
                message = _receive(receiver, project_id)
                if message[:1] != END:
                    raise ExportFailed(f"export of project {project_id}: unexpected message {message[:1]!r}")
                if drops is not None:
                    drops.update(orjson.loads(message[1:]))
    finally:
        for receiver in receivers:
            receiver.close()
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
        db.dispose()


def _receive(receiver: Connection, project_id: int) -> bytes:
    try:
        message: bytes = receiver.recv_bytes()
    except EOFError:
        raise ExportFailed(f"export of project {project_id}: the export process ended early") from None
    if message[:1] == ERROR:
        raise ExportFailed(f"export of project {project_id} failed: {message[1:].decode(errors='replace')}")
    return message


async def relay(
    settings: Settings,
    *,
    project_id: int,
    filt: ExportFilter,
    block_bytes: int = BLOCK_BYTES,
    excluded: set[int] | None = None,
    key: bytes | None = None,
) -> AsyncIterator[bytes]:
    """``export_blocks`` for an async response: the export's bytes as the children make them; the children are
    stopped when the response ends early."""
    made = export_blocks(
        settings, project_id=project_id, filt=filt, block_bytes=block_bytes, excluded=excluded, key=key
    )
    try:
        while (block := await anyio.to_thread.run_sync(next, made, None)) is not None:
            yield block
    finally:
        with anyio.CancelScope(shield=True):  # also when the response was cancelled (the client went away)
            await anyio.to_thread.run_sync(made.close)
