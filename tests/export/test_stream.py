"""The live export is made in a niced process of its own and relayed: same bytes, stopped when the client goes,
pausing while people's requests are in flight."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select, update

from app.config import Settings
from app.db import Database
from app.export import stream
from app.export.filters import resolve
from app.export.pseudonyms import pseudonym_key
from app.export.rows import jsonl_lines, pair_rows
from app.export.schemas import ExportFilter
from app.kit import activity
from app.models import Candidate, Item, Project


def _grandchildren() -> dict[int, int]:
    """pid → nice value of the processes whose parent is a child of this one (the export processes are
    children of the forkserver, which is ours)."""
    found: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
            if fields[0] != "Z":
                stats[int(entry.name)] = fields
    children = {pid for pid, f in stats.items() if int(f[1]) == os.getpid()}
    for pid, f in stats.items():
        if int(f[1]) in children:
            found[pid] = int(f[16])  # field 19 of /proc/pid/stat: nice
    return found


def _in_process(db: Database, project_id: int, filters: ExportFilter) -> bytes:
    """The same export made here, in this process's own session (the reference the relayed bytes must equal)."""
    assert db.settings is not None
    key = pseudonym_key(db.settings.data_dir)
    with db.session(write=False) as s:
        if db.is_postgres:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        project = s.get(Project, project_id)
        assert project is not None
        rules = resolve(s, project=project, filters=filters, key=key, by_admin=True)
        return b"".join(jsonl_lines(s, rules=rules))


def _collect(settings: Settings, project_id: int, **kwargs: Any) -> bytes:
    async def run() -> bytes:
        return b"".join([block async for block in stream.jsonl_body(settings, project_id=project_id, **kwargs)])

    return anyio.run(run)


def test_relayed_bytes_equal_the_export_made_in_process(
    db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    project_id = world["project_id"]
    for filters in (ExportFilter(), ExportFilter(format="conversational", min_judgments=2)):
        expected = _in_process(db, project_id, filters)
        assert expected.count(b"\n") >= 2
        assert _collect(settings, project_id, filters=filters) == expected
        assert _collect(settings, project_id, filters=filters, block_bytes=1) == expected


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_chunks_made_by_several_processes_come_out_in_order(
    db: Database, settings: Settings, world: dict[str, Any], processes: int
) -> None:
    project_id = world["project_id"]
    filters = ExportFilter(min_judgments=1, split="all")
    expected = _in_process(db, project_id, filters)
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        in_process: Counter[str] = Counter()
        for _ in pair_rows(s, rules=resolve(s, project=project, filters=filters, key=b"x"), drops=in_process):
            pass
    drops: Counter[str] = Counter()
    seen: list[tuple[int, int]] = []
    made = stream.jsonl_blocks(
        settings,
        project_id=project_id,
        filters=filters,
        processes=processes,
        chunk_items=2,  # 9 exported items: chunks of 2, 2, 2, 2, 1, dealt round the processes
        block_bytes=100,
        drops=drops,
        on_chunk=lambda done, total: seen.append((done, total)),
    )
    assert b"".join(made) == expected
    assert seen == [(n, 5) for n in range(1, 6)]
    assert drops == in_process and drops["_items"] == 9 and drops["_kept"] == expected.count(b"\n")


def test_an_export_of_no_items_is_empty(settings: Settings, world: dict[str, Any], db: Database) -> None:
    with db.session() as s:
        s.execute(update(Item).where(Item.project_id == world["project_id"]).values(status="pending"))
    drops: Counter[str] = Counter()
    assert (
        b"".join(stream.jsonl_blocks(settings, project_id=world["project_id"], filters=ExportFilter(), drops=drops))
        == b""
    )
    assert drops["_items"] == 0 and drops["_kept"] == 0


def test_the_export_process_is_niced_and_stopped_when_the_client_goes(
    db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    # A late line larger than a pipe's buffer (64 KiB): the child cannot finish before the first line is read.
    with db.session() as s:
        for candidate in s.scalars(select(Candidate).where(Candidate.item_id == world["items"]["decided"])):
            candidate.text = f"{candidate.position} " + "long " * 40_000
    before = set(_grandchildren())

    async def run() -> tuple[dict[int, int], dict[int, int]]:
        relayed = stream.jsonl_body(settings, project_id=world["project_id"], filters=ExportFilter(), block_bytes=1)
        await relayed.__anext__()  # one line read; the child waits to send the next
        during = {pid: nice for pid, nice in _grandchildren().items() if pid not in before}
        await relayed.aclose()  # the client went away
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = {pid: nice for pid, nice in _grandchildren().items() if pid in during}
            if not after:
                break
            await anyio.sleep(0.05)
        return during, after

    during, after = anyio.run(run)
    assert list(during.values()) == [stream.NICE]  # one process: the project's items make one chunk
    assert after == {}


def test_a_failing_export_process_aborts_the_response(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    with db.session() as s:  # as above: the child is still at work after the first line
        for candidate in s.scalars(select(Candidate).where(Candidate.item_id == world["items"]["decided"])):
            candidate.text = f"{candidate.position} " + "long " * 40_000
    before = set(_grandchildren())

    async def run() -> None:
        relayed = stream.jsonl_body(settings, project_id=world["project_id"], filters=ExportFilter(), block_bytes=1)
        await relayed.__anext__()
        for pid in set(_grandchildren()) - before:
            os.kill(pid, signal.SIGKILL)  # the export process dies mid-export
        try:
            async for _ in relayed:
                pass
        finally:
            await relayed.aclose()

    with pytest.raises(stream.ExportFailed, match="the export process ended early"):
        anyio.run(run)
    with pytest.raises(stream.ExportFailed, match="no such project"):
        _collect(settings, 10**9, filters=ExportFilter())


def test_the_export_pauses_while_a_request_is_in_flight_and_makes_the_same_bytes(
    db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    """A request in flight on the board of the export's data directory holds the export's processes back (here
    without limit); once it ends they go on, and the file is the one made without pausing."""
    project_id, filters = world["project_id"], ExportFilter()
    expected = _in_process(db, project_id, filters)
    patient = settings.model_copy(update={"export_yield_ms": 3_600_000})
    board = activity.board_for(settings.data_dir)
    made: list[bytes] = []
    board.enter()
    try:
        worker = threading.Thread(
            target=lambda: made.extend(
                stream.jsonl_blocks(patient, project_id=project_id, filters=filters, block_bytes=1)
            )
        )
        worker.start()
        worker.join(2.0)
        assert worker.is_alive() and made == []  # (made unpaced, this export takes a fraction of that)
    finally:
        board.leave()
    worker.join(60)
    assert not worker.is_alive() and b"".join(made) == expected


def test_the_export_makes_progress_under_requests_that_never_end(
    db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    """Each pause is bounded by ``export_yield_ms``: with a request always in flight the export still ends."""
    project_id, filters = world["project_id"], ExportFilter()
    expected = _in_process(db, project_id, filters)
    board = activity.board_for(settings.data_dir)
    board.enter()
    try:
        hasty = settings.model_copy(update={"export_yield_ms": 1})
        assert b"".join(stream.jsonl_blocks(hasty, project_id=project_id, filters=filters)) == expected
    finally:
        board.leave()


def test_the_pace_is_kept_before_each_query_and_every_few_items(db: Database, world: dict[str, Any]) -> None:
    with db.session(write=False) as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        rules = resolve(s, project=project, filters=ExportFilter(), key=b"x")
        plain = b"".join(jsonl_lines(s, rules=rules))
        calls: list[str] = []
        paced = b"".join(jsonl_lines(s, rules=rules, pace=lambda: calls.append(threading.current_thread().name)))
    assert paced == plain
    # One chunk (9 items): its five queries and the one that finds no more items in the reader thread, one call
    # after 8 items in this one.
    assert calls.count("export-reader") == 6 and calls.count(threading.current_thread().name) == 1
