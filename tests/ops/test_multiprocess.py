"""prometheus_client's multiprocess mode: /metrics sums what every process of the machine counted (each writes
its values to files in PROMETHEUS_MULTIPROC_DIR), and still reads the database's figures itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import ROOT
from tests.ops.conftest import METRICS_TOKEN, bearer, value

COUNT = "from app.ops import metrics; metrics.count_export_bytes('snapshot', {size}); metrics.count_retry('judge')"


def test_counts_of_other_processes_are_summed(
    client: TestClient, world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for size in (1234, 766):  # two processes (a worker writing a snapshot, say), each counting and exiting
        subprocess.run([sys.executable, "-c", COUNT.format(size=size)], env=env, cwd=ROOT, check=True, timeout=60)
    assert len(list(directory.glob("counter_*.db"))) == 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    text = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    assert value(text, "prefstudio_export_bytes_total", kind="snapshot") == 2000
    assert value(text, "prefstudio_model_request_retries_total", kind="judge") == 2
    assert value(text, "prefstudio_queue_depth", project="pa") == 3  # from the database, as in single mode
