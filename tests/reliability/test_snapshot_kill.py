"""`kill -9` the worker while it writes a snapshot: the API never serves a partial file (409 while the snapshot
is pending, never a truncated 200), and a new worker writes it again from the start."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs import service as jobs
from app.models import Job, Snapshot, utcnow
from tests.factories import make_item, make_judgment, make_project, make_user
from tests.reliability.conftest import prefstudio_command
from tests.reliability.helpers import wait_for

PAIRS = 40

# A real worker whose snapshot writing is held up at one stage: the test kills it there with SIGKILL.
# "writing": after a few lines are in the temporary file; "renamed": after the file is renamed into place
# but before the snapshot is recorded as ready.
SLOW_WORKER = """
import sys, time, pathlib
from app.export import snapshots
marker, stage = pathlib.Path(sys.argv[1]), sys.argv[2]
if stage == "writing":
    real = snapshots.jsonl_lines
    def slow(*args, **kwargs):
        for n, line in enumerate(real(*args, **kwargs)):
            if n == 5:
                marker.touch()
            if n >= 5:
                time.sleep(1)
            yield line
    snapshots.jsonl_lines = slow
else:
    def stuck(*args, **kwargs):
        marker.touch()
        time.sleep(3600)
    snapshots.data_card = stuck
from app.config import get_settings
from app.db import make_database
from app.jobs.runner import run_worker
run_worker(make_database(get_settings()), poll_s=0.1)
"""


@pytest.fixture
def exporting(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        admin, annotator = make_user(s, "chief", role="admin"), make_user(s, "ann")
        project = make_project(s, "snap", k=2, overlap=1, members=[annotator])
        for i in range(PAIRS):
            item = make_item(s, project, f"prompt {i}", candidates=[f"good {i}", f"bad {i}"])
            make_judgment(s, item, annotator, {"overall": ("preference", 0, 1)}, reason=f"r{i}")
        api = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        export = create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1]
    return {"api": {"Authorization": f"Bearer {api}"}, "export": {"Authorization": f"Bearer {export}"}}


def _state(db: Database, snapshot_id: int) -> Snapshot:
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, snapshot_id)
        assert snapshot is not None
        return snapshot


def _files(data_dir: Path, snapshot_id: int) -> tuple[list[Path], list[Path]]:
    """(temporary files, renamed files) of one snapshot."""
    if not data_dir.exists():
        return [], []
    return sorted(data_dir.glob(f".snapshot-{snapshot_id}-*.tmp")), sorted(data_dir.glob(f"snapshot-{snapshot_id}-*"))


@pytest.mark.parametrize("stage", ["writing", "renamed"])
def test_snapshot_worker_killed_mid_write_serves_nothing_partial_and_is_written_again(
    client: TestClient,
    db: Database,
    settings: Settings,
    exporting: dict[str, Any],
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    stage: str,
) -> None:
    created = client.post("/api/v1/projects/snap/snapshots", json={"name": "nightly"}, headers=exporting["api"])
    assert created.status_code == 202, created.text
    sid = created.json()["id"]
    marker = tmp_path / "reached"

    worker = spawn([sys.executable, "-c", SLOW_WORKER, str(marker), stage], log="slow")
    wait_for(marker.exists, what=f"the worker to reach '{stage}'")
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL

    data_dir = Path(settings.data_dir)
    temporary, renamed = _files(data_dir, sid)
    if stage == "writing":
        assert len(temporary) == 1 and renamed == []  # the dead worker's half-written file
        assert temporary[0].stat().st_size < 1000  # a few lines at most, not the whole export
    else:
        assert temporary == [] and len(renamed) == 1  # complete on disk, but never recorded as ready
    assert _state(db, sid).state == "pending"

    # Nothing partial is served: the file route refuses with a JSON 409, "latest" has no ready snapshot.
    for _ in range(2):
        r = client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=exporting["export"])
        assert r.status_code == 409 and r.json() == {"detail": "The snapshot is still being written"}
        latest = client.get("/api/v1/snapshots/latest.jsonl", headers=exporting["export"])
        assert latest.status_code == 404 and "no ready snapshot" in latest.json()["detail"]
        meta = client.get(f"/api/v1/snapshots/{sid}", headers=exporting["export"]).json()
        assert meta["state"] == "pending" and meta["sha256"] is None

    # The dead worker stops beating; once that is stale, a new worker takes the job over and writes afresh.
    with db.session() as s:
        s.execute(update(Job).where(Job.kind == "snapshot").values(heartbeat_at=utcnow() - jobs.STALE_AFTER * 2))
    second = spawn([*prefstudio_command(), "worker", "--once", "--poll", "0.1"], log="second")
    assert second.wait(90) == 0

    snapshot = _state(db, sid)
    assert snapshot.state == "ready" and snapshot.row_count == PAIRS and snapshot.file_name
    assert not snapshot.file_name.startswith(".") and snapshot.file_name.endswith(".jsonl")
    served = client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=exporting["export"])
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == snapshot.sha256 == served.headers["x-snapshot-sha256"]
    assert len(served.content) == snapshot.size_bytes
    rows = [json.loads(line) for line in served.content.decode().splitlines()]
    assert len(rows) == PAIRS and {r["chosen"] for r in rows} == {f"good {i}" for i in range(PAIRS)}
    assert client.get("/api/v1/snapshots/latest.jsonl", headers=exporting["export"]).content == served.content
    with db.session(write=False) as s:
        job = s.get(Job, snapshot.job_id)
        assert job is not None and job.state == "done"
