"""The worker's side without TRL: the checked download, the reporter, log entries and the command's checks."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.db import Database
from app.models import Snapshot, TrainingRun
from app.training.client import AppClient, AppRequestError, SnapshotMismatch
from app.training.reporting import Reporter, log_entry
from app.training.schemas import TrainingParams
from app.training.trainer import train
from tests.training.conftest import World


def app_client(client: TestClient, token: str) -> AppClient:
    return AppClient("http://testserver", token, http=client)


def snapshot_file(db: Database, settings: Settings, snapshot_id: int) -> Path:
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, snapshot_id)
        assert snapshot is not None and snapshot.file_name
        return settings.data_dir / snapshot.file_name


def corrupt(path: Path) -> None:
    """One byte changed, the size kept: only the hash can tell."""
    data = bytearray(path.read_bytes())
    data[10] = ord("X") if data[10] != ord("X") else ord("Y")
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_download_latest_is_checked(client: TestClient, world: World, db: Database, settings: Settings, tmp_path: Path):
    api = app_client(client, world.tokens["export"])
    info = api.snapshot("latest")
    assert info.id == world.snapshot_id and info.project == "dpo" and info.row_count == 6
    dest = api.download(info, tmp_path / "got.jsonl")
    body = dest.read_bytes()
    assert body == snapshot_file(db, settings, world.snapshot_id).read_bytes()
    assert hashlib.sha256(body).hexdigest() == info.sha256


def test_sha_mismatch_is_refused(client: TestClient, world: World, db: Database, settings: Settings, tmp_path: Path):
    corrupt(snapshot_file(db, settings, world.snapshot_id))
    api = app_client(client, world.tokens["export"])
    with pytest.raises(SnapshotMismatch, match="sha256 mismatch"):
        api.download(api.snapshot(str(world.snapshot_id)), tmp_path / "got.jsonl")
    assert not (tmp_path / "got.jsonl").exists()


def test_training_on_a_damaged_snapshot_fails_in_the_app(
    client: TestClient, world: World, db: Database, settings: Settings, tmp_path: Path
) -> None:
    corrupt(snapshot_file(db, settings, world.snapshot_id))
    api = app_client(client, world.tokens["export"])
    with pytest.raises(SnapshotMismatch):
        train(api, snapshot="latest", model="unused", output_dir=tmp_path / "out", params=TrainingParams())
    with db.session(write=False) as s:
        (run,) = s.query(TrainingRun).all()
        assert run.state == "failed" and run.error is not None
        assert run.error.startswith("SnapshotMismatch: ") and "sha256 mismatch" in run.error
    assert not (tmp_path / "out").exists()  # nothing was trained or saved


def test_only_the_first_process_of_a_distributed_launch_reports(
    client: TestClient, world: World, db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt(snapshot_file(db, settings, world.snapshot_id))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SnapshotMismatch):
        train(
            app_client(client, world.tokens["export"]),
            snapshot="latest",
            model="unused",
            output_dir=tmp_path / "out",
            params=TrainingParams(),
        )
    with db.session(write=False) as s:
        assert s.query(TrainingRun).count() == 0  # rank 0 records and ends the run, not this one


def test_other_projects_snapshot_cannot_be_downloaded(client: TestClient, world: World, tmp_path: Path) -> None:
    api = app_client(client, world.tokens["export"])
    with pytest.raises(AppRequestError, match="HTTP 403"):
        api.snapshot(str(world.other_snapshot_id))


class FlakyClient(AppClient):
    """The app is unreachable for the first ``failures`` reports."""

    def __init__(self, inner: AppClient, failures: int) -> None:
        self.__dict__.update(inner.__dict__)
        self.failures = failures

    def update_run(self, run_id: int, **kwargs: Any) -> dict[str, Any] | None:
        if self.failures > 0:
            self.failures -= 1
            raise httpx.ConnectError("connection refused")
        return super().update_run(run_id, **kwargs)


def test_reporting_failures_do_not_stop_training(
    client: TestClient, world: World, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    api = app_client(client, world.tokens["export"])
    run_id = api.create_run(
        snapshot_id=world.snapshot_id, base_model="m", output_dir="o", params=TrainingParams(), environment={}
    )
    now = [0.0]
    reporter = Reporter(FlakyClient(api, failures=1), run_id, every_s=10.0, batch=2, clock=lambda: now[0])
    reporter.add({"step": 1, "loss": 0.7})
    assert reporter.sent == 0 and len(reporter.pending) == 1  # batched: not sent yet
    with caplog.at_level(logging.WARNING, logger="prefstudio.train"):
        reporter.add({"step": 2, "loss": 0.6})  # batch full: the send fails, quietly
    assert reporter.failures == 1 and len(reporter.pending) == 2
    assert "could not report 2 log entries" in caplog.text
    now[0] = 11.0
    reporter.add({"step": 3, "loss": 0.5})  # time is up: all three go
    assert reporter.sent == 3 and reporter.pending == []
    assert reporter.finish("done", tries=1)
    with db.session(write=False) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None and run.state == "done"
        assert [e["step"] for e in run.metrics] == [1, 2, 3]


def test_finish_gives_up_quietly_when_the_app_is_gone(world: World) -> None:
    api = AppClient("http://127.0.0.1:9", "token", timeout=0.5)  # nothing listens on the discard port
    reporter = Reporter(api, 1)
    reporter.add({"step": 1, "loss": 0.5})
    assert reporter.flush() is False
    assert reporter.finish("done", tries=2, pause_s=0.01) is False
    assert reporter.pending == [{"step": 1, "loss": 0.5}]


def test_log_entry_keeps_numbers() -> None:
    logs = {"loss": 0.69, "rewards/accuracies": 1, "grad_norm": float("nan"), "note": "x", "flag": True, "step": 9}
    assert log_entry(logs, step=4) == {"step": 4, "loss": 0.69, "rewards/accuracies": 1, "grad_norm": None}


def test_params_default_to_the_issue() -> None:
    p = TrainingParams()
    assert (p.beta, p.learning_rate, p.effective_batch, p.max_length, p.epochs) == (0.1, 5e-7, 32, 2048, 1)
    assert (p.warmup_steps, p.logging_steps, p.max_steps) == (100, 10, None)


def test_train_command_checks_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFSTUDIO_TOKEN", raising=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--model", "m"])
    assert result.exit_code == 2 and "token" in result.output
    result = runner.invoke(cli, ["train", "--token", "t", "--model", "m", "--epochs", "4"])
    assert result.exit_code == 2 and "--epochs" in result.output
    monkeypatch.setenv("PREFSTUDIO_TOKEN", "t")
    result = runner.invoke(cli, ["train", "--model", "m", "--beta", "0"])
    assert result.exit_code == 2 and "--beta" in result.output  # the token came from the environment
