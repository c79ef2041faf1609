"""`prefstudio import PROJECT FILE`: the same import as the page, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from app.config import get_settings
from app.db import make_database
from app.items.importer import ImportFailed, import_items
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
