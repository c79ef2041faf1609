"""`prefstudio import PROJECT FILE` and `prefstudio import-judgments PROJECT FILE`: the same imports as the pages,
with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from app.config import get_settings
from app.db import make_database
from app.items.importer import ImportFailed, import_items
from app.items.judgments import JudgmentImportResult, import_judgments
from app.kit.errors import AppError
from app.projects.deps import project_by_slug

console = Console(stderr=True)


def import_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSONL or CSV file")],
) -> None:
    """Import items (prompts, optionally with candidates) from a JSONL or CSV file — all or nothing."""
    db = make_database(get_settings())
    size = file.stat().st_size
    columns = (TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar, file.open("rb") as stream:
            task = bar.add_task("import", total=size)
            with db.session() as s:
                result = import_items(
                    s,
                    project=project_by_slug(s, project),
                    stream=stream,
                    filename=file.name,
                    progress=lambda done: bar.update(task, completed=done),
                )
    except ImportFailed as exc:
        for error in exc.errors:
            console.print(f"[red]line {error['line']}[/red]: {error['message']}")
        console.print(f"[red]{exc.detail['message']}[/red]")
        raise typer.Exit(1) from exc
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    console.print(
        f"imported {result.created} items ({result.ready} ready, {result.pending} waiting for candidates) "
        f"from {result.lines} lines; {result.duplicate_count} duplicates skipped (import batch #{result.batch_id})"
    )
    shown = result.duplicates[:20]
    for dup in shown:
        console.print(f"  line {dup['line']}: {dup['reason']}")
    if result.duplicate_count > len(shown):
        console.print(f"  … and {result.duplicate_count - len(shown)} more")


def import_judgments_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSONL file")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every line, write nothing")] = False,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Skip lines whose annotator already judged the item")
    ] = False,
    as_members: Annotated[
        bool, typer.Option("--as-members", help="Import an annotator named like an existing user as that user")
    ] = False,
) -> None:
    """Import judgments from earlier annotation rounds (JSONL, docs/import-judgments.md) — all or nothing."""
    db = make_database(get_settings())
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar, file.open("rb") as stream:
            reading = bar.add_task("reading", total=file.stat().st_size)
            writing = bar.add_task("storing", total=None, visible=False)

            def progress(stage: str, done: int) -> None:
                if stage == "read":
                    bar.update(reading, completed=done)
                else:
                    bar.update(writing, completed=done, visible=True)

            with db.session() as s:
                result = import_judgments(
                    s,
                    project=project_by_slug(s, project),
                    stream=stream,
                    skip_existing=skip_existing,
                    as_members=as_members,
                    dry_run=dry_run,
                    progress=progress,
                )
                if dry_run:
                    s.rollback()
    except ImportFailed as exc:
        for error in exc.errors:
            console.print(f"[red]line {error['line']}[/red]: {escape(error['message'])}")
        console.print(f"[red]{exc.detail['message']}[/red]")
        raise typer.Exit(1) from exc
    except AppError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc.detail))}")
        raise typer.Exit(1) from exc
    console.print(judgments_summary(result))


def judgments_summary(result: JudgmentImportResult) -> str:
    """One line saying what an import of judgments did."""
    if result.already_imported:
        return "this file was already imported into this project: nothing was written"
    verb = "would import" if result.dry_run else "imported"
    text = (
        f"{verb} {result.judgments} judgments of {result.items} items from {result.lines} lines; "
        f"annotators: {len(result.annotators_created)} new (external), {len(result.annotators_matched)} existing"
    )
    if result.skipped_count:
        text += f"; {result.skipped_count} lines skipped (already judged)"
    return text
