"""The dataset card of a release (README.md): the Hub's YAML header — configs, dataset_info, license, language,
task categories, tags — over the snapshot's own data card (counts, filter, agreement, annotators, models)."""

from __future__ import annotations

from typing import Any

from app.release.parquet import card_features
from app.release.schemas import DEFAULT_CONFIG, ReleasedFile, ReleaseSource

TAGS = ["dpo", "preference", "human-feedback", "prefstudio"]
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def dataset_card(source: ReleaseSource, files: list[ReleasedFile], *, license: str, languages: list[str]) -> str:
    """README.md of the release: YAML header in the Hub's format, then what the data is and the snapshot's card."""
    from huggingface_hub import DatasetCardData  # the release command only

    configs: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    for config in [f.config for f in source.files if f.rows]:
        parquet = [f for f in files if f.config == config]
        described: dict[str, Any] = {"config_name": config}
        if config == DEFAULT_CONFIG:
            described["default"] = True
        configs.append(described | {"data_files": [{"split": f.split, "path": f.name} for f in parquet]})
        infos.append(
            {
                "config_name": config,
                "features": card_features(source.conversational),
                "splits": [{"name": f.split, "num_bytes": f.num_bytes, "num_examples": f.rows} for f in parquet],
                "download_size": sum(f.size for f in parquet),
                "dataset_size": sum(f.num_bytes for f in parquet),
            }
        )
    data = DatasetCardData(
        license=license,
        language=languages or None,
        task_categories=["text-generation"],
        tags=TAGS,
        size_categories=[size_category(source.rows)],
        pretty_name=_title(source),
        configs=configs,
        dataset_info=infos,
    )
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(_body(source, files)) + "\n"


def size_category(rows: int) -> str:
    """The Hub's size bucket of a dataset with ``rows`` rows."""
    return next((label for bound, label in SIZE_CATEGORIES if rows < bound), "1M<n<10M")


def _title(source: ReleaseSource) -> str:
    name = " ".join(f"{source.project_name or source.project_slug} preference pairs".split())
    return name[:200]


def _body(source: ReleaseSource, files: list[ReleasedFile]) -> list[str]:
    shape = "lists of chat messages (conversational)" if source.conversational else "text (standard)"
    snapshot_name = " ".join(source.name.split())
    lines = [
        f"# {_title(source)}",
        "",
        f"{source.rows:,} preference pairs on the dimension `{source.dimension}` from the prefstudio project "
        f"`{source.project_slug}`, snapshot {source.snapshot_id}"
        + (f" ({snapshot_name})" if snapshot_name else "")
        + f". Prompt and answers are {shape}. `meta` is a JSON string of each pair's provenance.",
        "",
        "## Load",
        "",
        "```python",
        "import json",
        "from datasets import load_dataset",
        "",
        'pairs = load_dataset("THIS_REPOSITORY_OR_DIRECTORY")  # config "default"; its splits below',
        'meta = json.loads(pairs["train"][0]["meta"])',
        "```",
        "",
        "TRL's `DPOTrainer` trains on the `default` config as it is: it reads `prompt`, `chosen` and `rejected`.",
        "Train and test follow `meta.split`, the project's split of its items (an item is always on one side).",
        "",
        "## Columns",
        "",
        "| column | content |",
        "| --- | --- |",
        "| prompt | the prompt" + (": a list of `{role, content}` messages" if source.conversational else "") + " |",
        "| chosen | the preferred answer" + (" as one assistant message" if source.conversational else "") + " |",
        "| rejected | the other answer" + (" as one assistant message" if source.conversational else "") + " |",
        "| reason | the annotators' reasons, joined |",
        "| meta | JSON: item and candidate ids, models, sampling, votes, margin, agreement, pseudonymous annotators |",
        "",
        "## Files",
        "",
        "| config | split | file | pairs | bytes | sha256 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in files:
        if f.config is not None:
            lines.append(f"| {f.config} | {f.split} | `{f.name}` | {f.rows:,} | {f.size:,} | `{f.sha256}` |")
    empty = [f.config for f in source.files if not f.rows]
    if empty:
        lines += ["", f"Parts of the snapshot with no pairs, hence no config here: {', '.join(empty)}."]
    lines += [
        "",
        f"Made from snapshot {source.snapshot_id} (`{source.sha256}`, {source.rows:,} pairs, {source.size:,} bytes). "
        "`release.json` lists every file with its sha256; `prefstudio verify DIR` checks them.",
        "",
        f"## Data card of snapshot {source.snapshot_id}" + (f" ({snapshot_name})" if snapshot_name else ""),
        "",
        *_demoted(source.card),
    ]
    return lines


def _demoted(markdown: str) -> list[str]:
    """The snapshot's card under this card's heading: without its own title, its sections one level down."""
    lines, fenced = [], False
    body = markdown.splitlines()
    if body and body[0].startswith("# "):
        body = body[1:]
    while body and not body[0].strip():
        body = body[1:]
    for line in body:
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return lines
