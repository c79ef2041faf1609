"""`prefstudio import PROJECT FILE` and `prefstudio import-judgments PROJECT FILE`: the same imports as the pages,
with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from app.items.formats.registry import FORMATS, NATIVE
from app.items.formats.service import FormatImportResult, import_file_as
from app.items.importer import ImportFailed, ImportResult
from app.items.judgments import JudgmentImportResult, import_judgments
from app.kit.errors import AppError
from app.projects.deps import project_by_slug

console = Console(stderr=True)


def import_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSONL or CSV file")],
    fmt: Annotated[
        str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)} (docs/import-formats.md)")
    ] = NATIVE,
    annotator: Annotated[
        str | None, typer.Option("--annotator", help="Foreign formats: the external annotator's name (or prefix)")
    ] = None,
) -> None:
    """Import items (prompts, optionally with candidates) from a JSONL or CSV file — all or nothing; with --format,
    another tool's file as items and the judgments of its external annotators."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    db = make_database(get_settings())
    size = file.stat().st_size
    columns = (TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    result: ImportResult | FormatImportResult
    try:
        with Progress(*columns, console=console, transient=True) as bar, file.open("rb") as stream:
            task = bar.add_task("import", total=size)
            with db.session() as s:
                target = project_by_slug(s, project)

                def progress(done: int) -> None:
                    bar.update(task, completed=done)

                result = import_file_as(
                    s,
                    project=target,
                    stream=stream,
                    filename=file.name,
                    fmt=fmt,
                    annotator=annotator,
                    progress=progress,
                )
    except ImportFailed as exc:
        for error in exc.errors:
            console.print(f"[red]line {error['line']}[/red]: {escape(str(error['message']))}")
        console.print(f"[red]{exc.detail['message']}[/red]")
        raise typer.Exit(1) from exc
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    console.print(
        f"imported {result.created} items ({result.ready} ready, {result.pending} waiting for candidates) "
        f"from {result.lines} lines; {result.duplicate_count} duplicates skipped (import batch #{result.batch_id})"
    )
    _listed(result.duplicates, result.duplicate_count)
    if isinstance(result, FormatImportResult):
        console.print(format_summary(result))
        _listed(result.skipped, result.skipped_count)
        _listed(result.unjudged, result.unjudged_count)


def _listed(lines: list[dict[str, Any]], count: int) -> None:
    """The first 20 lines of a list (duplicates, records skipped…) with their reasons, and how many more."""
    shown = lines[:20]
    for line in shown:
        console.print(f"  line {line['line']}: {escape(str(line['reason']))}")
    if count > len(shown):
        console.print(f"  … and {count - len(shown)} more")


def format_summary(result: FormatImportResult) -> str:
    """One line saying what the judgments of a foreign file became."""
    text = (
        f"{result.format}: {result.records} records; {result.judgments} judgments of external annotators "
        f"({len(result.annotators_created)} new, {len(result.annotators_matched)} from earlier imports)"
    )
    if result.skipped_count:
        text += f"; {result.skipped_count} records skipped (nothing to import)"
    if result.unjudged_count:
        text += f"; {result.unjudged_count} items without a judgment"
    return text


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
