"""The export, made in processes of their own at a lower CPU priority and relayed (by the web server, or the CLI).

One stream carries an export from the database to the client, in four stages:

1. ``app.export.rows.pair_rows``: the rows of the pairs the filter keeps, a chunk of items at a time (read by
   ``app.export.repository.read_chunks``, decided by ``app.export.fate``);
2. ``app.export.rows.jsonl_chunks``: each chunk's rows as one buffer of JSONL — in an export process;
3. ``jsonl_blocks``: in the parent, the children's JSONL in item order, in blocks of at most ``BLOCK_BYTES``
   (what the command line writes to its file);
4. ``jsonl_body``: the same blocks for an async response (what ``/api/v1/projects/{project}/export.jsonl``
   sends).

Making a million pairs is a minute of pure Python. In a web server's process it would hold the interpreter
lock against every annotator that process serves (a next-item or a submit waiting behind it for tens of
milliseconds per database round trip); in processes of its own, niced, it takes only what the annotators leave
of the CPUs — and on PostgreSQL two of them make alternate chunks of items at once. The parent relays 1 MB
blocks from pipes in order, which costs it next to nothing.

The pipe protocol: a child sends each of its chunks as DATA blocks followed by NEXT, then END with what each
rule dropped (JSON), or ERROR with the reason. The children read in transactions of their own (REPEATABLE READ
on PostgreSQL, all on the parent's snapshot: one consistent view for the whole file). If the client goes away
the children are stopped; if one fails, the response is aborted (the client sees the chunked body end without
its last chunk, as with any export that fails mid-stream) and the error is logged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import anyio
import orjson

from app.config import Settings
from app.db import export_snapshot, import_snapshot, make_database
from app.export import pseudonyms
from app.export.filters import resolve
from app.export.repository import chunk_starts
from app.export.rows import jsonl_chunks
from app.export.schemas import ExportFilter
from app.kit import activity
from app.models import Project
from app.ops import metrics

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
        context.set_forkserver_preload(["app.export.stream", "app.db"])
        _context = context
    return _context


def _produce(
    out: Connection,
    settings: dict[str, Any],
    project_id: int,
    filters: dict[str, Any],
    excluded: list[int],
    key: str,
    snapshot: str | None,
    ranges: list[tuple[int, int | None]],
    block_bytes: int,
) -> None:
    """A child: make the JSONL of its item ranges and send each range's as DATA blocks and NEXT, then END and
    what each rule dropped (or ERROR and the reason)."""
    with contextlib.suppress(OSError):
        os.nice(NICE)
    config = Settings.model_validate(settings)
    db = make_database(config)
    try:
        with db.session(write=False) as session:
            if db.is_postgres:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                if snapshot is not None:  # the parent's view of the data, so every part of the file agrees
                    import_snapshot(session.connection(), snapshot)
            project = session.get(Project, project_id)
            assert project is not None
            rules = resolve(
                session,
                project=project,
                filters=ExportFilter.model_validate(filters),
                key=bytes.fromhex(key),
                excluded=set(excluded),
            )
            drops: Counter[str] = Counter()
            pace = activity.pacer(config.data_dir, config.export_yield_ms / 1000)
            for part in jsonl_chunks(session, rules=rules, ranges=ranges, drops=drops, pace=pace):
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


@dataclass
class _Plan:
    """What the children of one export are given: the resolved filter, the key, the data's view, the ranges."""

    settings: Settings
    project_id: int
    filters: ExportFilter
    excluded: set[int]
    key: bytes
    snapshot: str | None  # PostgreSQL's exported snapshot, None on SQLite
    ranges: list[tuple[int, int | None]]
    block_bytes: int


def jsonl_blocks(
    settings: Settings,
    *,
    project_id: int,
    filters: ExportFilter,
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
    db = make_database(settings)
    children: list[Any] = []
    receivers: list[Connection] = []
    try:
        key = key if key is not None else pseudonyms.pseudonym_key(settings.data_dir)
        with db.session(write=False) as session:
            snapshot: str | None = None
            if db.is_postgres:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                snapshot = export_snapshot(session)
            project = session.get(Project, project_id)
            if project is None:
                raise ExportFailed(f"export of project {project_id} failed: no such project")
            rules = resolve(session, project=project, filters=filters, key=key, by_admin=True, excluded=excluded)
            starts = chunk_starts(session, project=project, size=chunk_items or CHUNK_ITEMS, rounds=filters.rounds)
            ranges: list[tuple[int, int | None]] = list(zip(starts, [*starts[1:], None], strict=False)) or [(0, None)]
            plan = _Plan(settings, project_id, filters, rules.excluded, key, snapshot, ranges, block_bytes)
            wanted = processes if processes is not None else (PROCESSES if db.is_postgres else 1)
            _start_children(plan, max(1, min(wanted, len(ranges))), children, receivers)
            yield from _relay_children(receivers, plan, drops, on_chunk)
    finally:
        for receiver in receivers:
            receiver.close()
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
        db.dispose()


def _start_children(plan: _Plan, count: int, children: list[Any], receivers: list[Connection]) -> None:
    """Start ``count`` children, the n-th making every ``count``-th range from the n-th; each is added to
    ``children`` and its pipe to ``receivers`` as soon as it runs (so the caller stops it whatever happens)."""
    context = _processes()
    for number in range(count):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_produce,
            args=(
                sender,
                plan.settings.model_dump(mode="json"),
                plan.project_id,
                plan.filters.model_dump(mode="json"),
                sorted(plan.excluded),
                plan.key.hex(),
                plan.snapshot,
                plan.ranges[number::count],
                plan.block_bytes,
            ),
            name=f"export-{plan.project_id}-{number}",
            daemon=True,
        )
        child.start()
        sender.close()
        children.append(child)
        receivers.append(receiver)


def _relay_children(
    receivers: list[Connection],
    plan: _Plan,
    drops: Counter[str] | None,
    on_chunk: Callable[[int, int], None] | None,
) -> Iterator[bytes]:
    """The children's blocks in range order (range i from child i mod n), then what each child dropped."""
    count, project_id = len(receivers), plan.project_id
    for index in range(len(plan.ranges)):
        while (message := _receive(receivers[index % count], project_id))[:1] == DATA:
            yield message[1:]
        if message[:1] != NEXT:
            raise ExportFailed(f"export of project {project_id}: unexpected message {message[:1]!r}")
        if on_chunk is not None:
            on_chunk(index + 1, len(plan.ranges))
    for receiver in receivers:
        message = _receive(receiver, project_id)
        if message[:1] != END:
            raise ExportFailed(f"export of project {project_id}: unexpected message {message[:1]!r}")
        if drops is not None:
            drops.update(orjson.loads(message[1:]))


def _receive(receiver: Connection, project_id: int) -> bytes:
    try:
        message: bytes = receiver.recv_bytes()
    except EOFError:
        raise ExportFailed(f"export of project {project_id}: the export process ended early") from None
    if message[:1] == ERROR:
        raise ExportFailed(f"export of project {project_id} failed: {message[1:].decode(errors='replace')}")
    return message


async def jsonl_body(
    settings: Settings,
    *,
    project_id: int,
    filters: ExportFilter,
    block_bytes: int = BLOCK_BYTES,
    excluded: set[int] | None = None,
    key: bytes | None = None,
) -> AsyncIterator[bytes]:
    """``jsonl_blocks`` for an async response: the export's bytes as the children make them; the children are
    stopped when the response ends early."""
    made = jsonl_blocks(
        settings, project_id=project_id, filters=filters, block_bytes=block_bytes, excluded=excluded, key=key
    )
    try:
        while (block := await anyio.to_thread.run_sync(next, made, None)) is not None:
            metrics.count_export_bytes("live", len(block))
            yield block
    finally:
        with anyio.CancelScope(shield=True):  # also when the response was cancelled (the client went away)
            await anyio.to_thread.run_sync(made.close)
