"""Pushing a release to the Hugging Face Hub: a dataset repository made if need be, then one upload of the directory
that also removes parquet files a former release left there (the repository then holds exactly this release)."""

from __future__ import annotations

import json
from pathlib import Path

from app.kit.errors import AppError
from app.release.service import MANIFEST


class HubError(AppError):
    """The Hub (or the network to it) refused or failed."""

    status_code = 502


def push_release(
    directory: Path, *, repo: str, token: str | None, endpoint: str | None = None, private: bool = False
) -> str:
    """Upload the release in ``directory`` to the dataset repository ``repo``; returns the commit's URL.
    ``token`` None: the Hub client's own (HF_TOKEN, or the one saved by ``hf auth login``)."""
    from huggingface_hub import HfApi  # the release command only

    snapshot = json.loads((directory / MANIFEST).read_bytes())["snapshot"]
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=True if private else None)
        commit = api.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=directory,
            commit_message=f"Release of snapshot {snapshot['id']} ({snapshot['project']})",
            commit_description=f"sha256 of the snapshot: {snapshot['sha256']}",
            delete_patterns=["*.parquet"],  # a former release's files that this one does not have
        )
    except Exception as exc:  # HfHubHTTPError, httpx's network errors, ValueError of a bad repo id
        raise HubError(f"The push to {repo} failed: {type(exc).__name__}: {exc}") from exc
    return str(commit.commit_url)
