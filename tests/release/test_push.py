"""`prefstudio release --push`: the real huggingface_hub client, over real HTTP, against a stand-in of the Hub.

The real Hub (huggingface.co) cannot be reached from here, so a small local server answers the calls that
``HfApi.create_repo`` and ``HfApi.upload_folder`` make: create the repository, check the card's YAML, list the
repository's files (for ``delete_patterns``), "preupload" (how each file travels) and commit. The stand-in says
"regular" for every file, so the files come inline in the commit; the real Hub sends large files through its Xet
storage, which a stand-in cannot imitate — that part of the client is not exercised here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()
TOKEN = "hf_stand_in_token"


class StandInHub:
    """The repositories, their files and every request, as the stand-in saw them."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.calls: list[tuple[str, str]] = []
        self.commits: list[dict[str, Any]] = []
        self.validated: list[dict[str, Any]] = []
        self.url = ""


def _handler(hub: StandInHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"error": "Invalid credentials in Authorization header"})
                return False
            return True

        def do_GET(self) -> None:
            hub.calls.append(("GET", self.path))
            path = self.path.split("?")[0]
            if not self._authorized():
                return
            if path.startswith("/api/datasets/") and "/tree/" in path:
                repo = path.removeprefix("/api/datasets/").split("/tree/")[0]
                listing = [
                    {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for p, b in sorted(hub.repos.get(repo, {}).items())
                ]
                self._reply(200, listing)
            else:
                self._reply(404, {"error": "not in the stand-in"})

        def do_POST(self) -> None:
            hub.calls.append(("POST", self.path))
            path = self.path.split("?")[0]
            body = self._body()
            if not self._authorized():
                return
            if path == "/api/validate-yaml":  # the client has the card's YAML checked before it uploads
                self._validate(json.loads(body))
            elif path == "/api/repos/create":
                payload = json.loads(body)
                repo = f"{payload['organization']}/{payload['name']}"
                if payload.get("type") != "dataset":
                    self._reply(400, {"error": "the stand-in holds datasets only"})
                elif repo in hub.repos:
                    self._reply(
                        409, {"error": "You already created this dataset repo", "url": f"{hub.url}/datasets/{repo}"}
                    )
                else:
                    hub.repos[repo] = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
                    self._reply(200, {"url": f"{hub.url}/datasets/{repo}", "name": repo})
            elif path.startswith("/api/datasets/") and "/preupload/" in path:
                files = json.loads(body)["files"]
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                self._reply(200, {"files": modes})
            elif path.startswith("/api/datasets/") and "/commit/" in path:
                repo = path.removeprefix("/api/datasets/").split("/commit/")[0]
                self._commit(repo, [json.loads(line) for line in body.splitlines() if line.strip()])
            else:
                self._reply(404, {"error": "not in the stand-in"})

        def _validate(self, payload: dict[str, Any]) -> None:
            hub.validated.append(payload)
            try:
                header = yaml.safe_load(payload["content"].split("---\n")[1])
                assert isinstance(header, dict) and header["configs"] and payload["repoType"] == "dataset"
            except Exception as exc:
                self._reply(400, {"error": f"Invalid metadata in README.md: {exc!r}"})
                return
            self._reply(200, {"warnings": []})

        def _commit(self, repo: str, lines: list[dict[str, Any]]) -> None:
            if repo not in hub.repos:
                self._reply(404, {"error": "Repository not found"})
                return
            files = hub.repos[repo]
            hub.commits.append({"repo": repo, "lines": lines})
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "deletedFile":
                    files.pop(value["path"], None)
            oid = hashlib.sha1(json.dumps(sorted(files)).encode()).hexdigest()
            self._reply(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid})

    return Handler


@pytest.fixture
def hub() -> Iterator[StandInHub]:
    state = StandInHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_push_uploads_the_release_to_a_dataset_repository(
    env: None, make_snapshot: Callable[..., int], hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot_id = make_snapshot("conversational")
    out = tmp_path / "release"
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(
        cli, ["release", str(snapshot_id), "--out", str(out), "--push", "team/prefs"] + ["--endpoint", hub.url]
    )
    assert result.exit_code == 0, result.output
    assert f"pushed: {hub.url}/datasets/team/prefs/commit/" in result.output
    assert ("POST", "/api/repos/create") in hub.calls
    assert [v["repoType"] for v in hub.validated] == ["dataset"]
    assert any(call[1].startswith("/api/datasets/team/prefs/preupload/main") for call in hub.calls)
    # The repository now holds exactly the release (and the Hub's own .gitattributes).
    assert hub.repos["team/prefs"] == {**_files(out), ".gitattributes": hub.repos["team/prefs"][".gitattributes"]}
    header = hub.commits[0]["lines"][0]
    assert header["key"] == "header" and f"snapshot {snapshot_id}" in header["value"]["summary"]

    # A second release into the same repository: it exists already, and the files of the first that the second
    # does not have (its test split) are deleted in the same commit.
    hub.repos["team/prefs"]["data/old-00000-of-00001.parquet"] = b"PAR1 from an older release"
    second = make_snapshot("conversational", ties=False)
    out2 = tmp_path / "second"
    result = runner.invoke(
        cli,
        ["release", str(second), "--out", str(out2), "--push", "team/prefs"]
        + ["--endpoint", hub.url, "--token", TOKEN],
    )
    assert result.exit_code == 0, result.output
    repo = hub.repos["team/prefs"]
    assert "data/old-00000-of-00001.parquet" not in repo and "ties/train-00000-of-00001.parquet" not in repo
    assert {name: body for name, body in repo.items() if name != ".gitattributes"} == _files(out2)


def test_a_refused_push_is_a_clear_error(
    env: None, make_snapshot: Callable[..., int], hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "release"
    result = runner.invoke(
        cli,
        ["release", str(make_snapshot()), "--out", str(out), "--push", "team/prefs"]
        + ["--endpoint", hub.url, "--token", "hf_wrong"],
    )
    assert result.exit_code == 1 and "The push to team/prefs failed" in result.output
    assert "401" in result.output and hub.repos == {}, result.output
    assert (out / "release.json").is_file()  # the release itself was written; push it again later
