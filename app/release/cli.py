"""`prefstudio release SNAPSHOT --out DIR [--push REPO]` and `prefstudio verify DIR|FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.config import get_settings
from app.db import make_database
from app.kit.errors import AppError
from app.release import verify as checks
from app.release.service import build_release, check_out, release_source

# Hashes and paths stay on one line each (to copy, to grep); paths are printed as text, never as markup.
console = Console(stderr=True, soft_wrap=True)


def release_command(
    snapshot: Annotated[int, typer.Argument(help="Snapshot id (see the project's Export page or the API)")],
    out: Annotated[Path, typer.Option(help="A new or empty directory for the dataset")],
    license: Annotated[str, typer.Option(help="The card's license: an identifier the Hub knows")] = "other",
    language: Annotated[
        list[str] | None, typer.Option(help="The card's language (ISO 639-1, e.g. en, zh; repeat for several)")
    ] = None,
    push: Annotated[str | None, typer.Option(help="Also upload to this Hub dataset repository (owner/name)")] = None,
    token: Annotated[str | None, typer.Option(envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN)")] = None,
    private: Annotated[bool, typer.Option(help="With --push: make a new repository private")] = False,
    endpoint: Annotated[str | None, typer.Option(help="With --push: another Hub than huggingface.co")] = None,
) -> None:
    """Write a snapshot as a Hugging Face dataset: parquet per split, a dataset card, release.json."""
    settings = get_settings()
    db = make_database(settings)
    try:
        check_out(out)
        with db.session(write=False) as session:
            source = release_source(session, snapshot_id=snapshot, settings=settings)
        columns = (TextColumn("pairs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        total = sum(f.rows for f in source.files)
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("release", total=total)
            files = build_release(
                source,
                out=out,
                license=license,
                languages=language or [],
                on_rows=lambda n: bar.advance(task, n),
            )
        for f in files:
            if f.rows is not None:
                console.print(f"{f.name}: {f.rows:,} pairs, {f.size:,} bytes", markup=False)
        console.print(f"release of snapshot {snapshot} written to {out}", markup=False)
        if not language:
            console.print("note: the card names no language; give --language to say which")
        if push:
            from app.release.hub import push_release  # the push only

            with console.status(f"pushing to {push}"):
                url = push_release(out, repo=push, token=token, endpoint=endpoint, private=private)
            console.print(f"pushed: {url}")
    except AppError as exc:
        console.print("error:", exc.detail, style="red", markup=False)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


def verify_command(
    path: Annotated[Path, typer.Argument(exists=True, help="A release directory, or a snapshot's JSONL file")],
    sha256: Annotated[str | None, typer.Option(help="A JSONL file: check against this sha256 (no database)")] = None,
    rows: Annotated[int | None, typer.Option(help="A JSONL file: and this many rows")] = None,
    snapshot: Annotated[int | None, typer.Option(help="A JSONL file: the snapshot (id) it should be")] = None,
) -> None:
    """Check a release against its release.json, or a snapshot file against the snapshot's sha256 and rows."""
    if path.is_dir():
        report = checks.verify_release(path)
    elif sha256 is not None:
        report = checks.verify_file(path, checks.Expected(sha256, rows, None, "--sha256"))
    else:
        report = _verify_against_database(path, snapshot)
    if not report.ok:
        console.print(f"{report.subject}: does not verify", style="red", markup=False)
        for problem in report.problems:
            console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(1)
    console.print(f"ok: {report.summary}", markup=False, highlight=False)


def _verify_against_database(path: Path, snapshot: int | None) -> checks.Report:
    db = make_database(get_settings())
    try:
        with db.session(write=False) as session:
            expected = checks.expected_of_file(session, path=path, snapshot_id=snapshot)
    finally:
        db.dispose()
    if expected is None:
        return checks.Report(
            subject=str(path),
            problems=[
                "no snapshot of this database has this file's name or sha256: it was changed, or comes from "
                "elsewhere (give --snapshot ID, or --sha256 and --rows)"
            ],
        )
    return checks.verify_file(path, expected)
