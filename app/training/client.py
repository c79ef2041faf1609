"""The app's JSON API as the training worker uses it, with its token: snapshots in, training runs out."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.training.schemas import TrainingParams

CHUNK = 1024 * 1024


class TrainingError(Exception):
    """Something the user can act on; its text is shown and reported to the app as the run's error."""


class SnapshotMismatch(TrainingError):
    """What was downloaded is not the snapshot the app describes."""


class AppRequestError(TrainingError):
    def __init__(self, status_code: int, detail: Any, url: str) -> None:
        super().__init__(f"{url}: HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class SnapshotInfo:
    id: int
    project: str
    name: str
    format: str
    row_count: int
    sha256: str
    size_bytes: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotInfo:
        try:
            return cls(
                id=int(data["id"]),
                project=str(data.get("project", "")),
                name=str(data.get("name") or ""),
                format=str(data.get("format", "")),
                row_count=int(data.get("row_count") or 0),
                sha256=str(data["sha256"] or ""),
                size_bytes=int(data.get("size_bytes") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"The app described the snapshot in an unexpected way: {data!r}") from exc


class AppClient:
    """The app's JSON API as the worker uses it: snapshots in, training runs out (Bearer token)."""

    def __init__(self, url: str, token: str, *, http: httpx.Client | None = None, timeout: float = 30.0) -> None:
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:500]
        raise AppRequestError(response.status_code, detail, str(response.request.url))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._check(self.http.request(method, path, **kwargs)).json()

    def snapshot(self, ref: str) -> SnapshotInfo:
        """A snapshot's record; ``ref`` is an id or ``latest`` (the newest ready snapshot of the token's project)."""
        return SnapshotInfo.from_json(self._json("GET", f"/api/v1/snapshots/{ref}"))

    def download(
        self, info: SnapshotInfo, dest: Path, *, on_progress: Callable[[int, int], None] | None = None
    ) -> Path:
        """Stream the snapshot's file to ``dest``, hashing it on the way; refuse it unless its sha256 is the one
        the app recorded (and sent in ``X-Snapshot-SHA256``)."""
        digest = hashlib.sha256()
        size = 0
        with self.http.stream("GET", f"/api/v1/snapshots/{info.id}.jsonl") as response:
            if not response.is_success:
                response.read()
                self._check(response)
            header = response.headers.get("x-snapshot-sha256", "")
            with open(dest, "wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if on_progress is not None:
                        on_progress(size, info.size_bytes)
        actual = digest.hexdigest()
        expected = {info.sha256.lower(), header.lower()} - {""}
        if not expected:
            raise SnapshotMismatch(f"Snapshot {info.id}: the app gave no sha256 to check the file against")
        if expected != {actual}:
            dest.unlink(missing_ok=True)
            raise SnapshotMismatch(
                f"Snapshot {info.id}: sha256 mismatch: downloaded {size} bytes hashing to {actual}, "
                f"expected {' / '.join(sorted(expected))}; refusing to train on it"
            )
        return dest

    def create_run(
        self,
        *,
        snapshot_id: int,
        base_model: str,
        output_dir: str,
        params: TrainingParams,
        environment: dict[str, str],
    ) -> int:
        body = {
            "snapshot_id": snapshot_id,
            "base_model": base_model,
            "output_dir": output_dir,
            "host": platform.node()[:200],
            "params": params.model_dump(),
            "environment": environment,
        }
        return int(self._json("POST", "/api/v1/training-runs", json=body)["id"])

    def update_run(
        self,
        run_id: int,
        *,
        metrics: list[dict[str, Any]] | None = None,
        state: str | None = None,
        error: str | None = None,
        model: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Append entries and/or end the run; ``model`` (with state done) is the checkpoint for the registry."""
        body: dict[str, Any] = {"metrics": metrics or []}
        if state is not None:
            body["state"] = state
        if error is not None:
            body["error"] = error[:20_000]
        if model is not None:
            body["model"] = model
        answer = self._json("PATCH", f"/api/v1/training-runs/{run_id}", json=body)
        return answer if isinstance(answer, dict) else None
