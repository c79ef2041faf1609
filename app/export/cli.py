"""`prefstudio export PROJECT --out FILE [filters]`: the same export as the page and the API."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.config import Settings, get_settings
from app.db import Database, make_database
from app.export import pseudonyms, snapshots, stream
from app.export.filters import resolve
from app.export.schemas import DROP_REASONS, ExportFilter, PartsWanted
from app.kit.errors import AppError
from app.pii.schemas import PiiDecision
from app.projects.deps import project_by_slug

console = Console(stderr=True)


def export_command(
    project: Annotated[str, typer.Argument(help="Project slug")],
    out: Annotated[Path | None, typer.Option(help="Write the JSONL here (written whole, then renamed)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="standard or conversational")] = "standard",
    dimension: Annotated[str, typer.Option(help="overall or a dimension key")] = "overall",
    pairs: Annotated[str, typer.Option(help="implied or best_worst")] = "implied",
    min_judgments: Annotated[int, typer.Option(help="judgments an item needs")] = 1,
    min_votes: Annotated[int, typer.Option(help="votes a pair needs (ties included)")] = 1,
    label: Annotated[str, typer.Option(help="majority, or model (the consensus model's direction)")] = "majority",
    min_confidence: Annotated[float | None, typer.Option(help="the model's posterior of the direction")] = None,
    min_strength: Annotated[float | None, typer.Option(help="mean signed strength of the votes (−3…3)")] = None,
    min_share: Annotated[float, typer.Option(help="winning direction's share of the votes")] = 0.0,
    min_margin: Annotated[int, typer.Option(help="votes for minus votes against")] = 1,
    drop_ties: Annotated[bool, typer.Option(help="drop pairs mostly called a tie")] = True,
    veto: Annotated[list[str] | None, typer.Option(help="chosen must not lose on this dimension (repeat)")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="ignore this annotator's votes (repeat)")] = None,
    min_kappa: Annotated[float | None, typer.Option(help="ignore annotators with a lower mean κ")] = None,
    min_gold_accuracy: Annotated[float | None, typer.Option(help="ignore annotators with lower gold accuracy")] = None,
    source: Annotated[
        str, typer.Option(help="human, judge (the primary judge's labels), both, or arena (an arena's votes)")
    ] = "human",
    min_judge_confidence: Annotated[float, typer.Option(help="judge labels: confidence needed (0–1)")] = 0.0,
    min_judge_kappa: Annotated[float, typer.Option(help="judge labels: judge-vs-human κ needed")] = 0.6,
    adjudicated: Annotated[bool, typer.Option(help="adjudication decisions override votes")] = True,
    drop_problematic: Annotated[bool, typer.Option(help="drop items flagged 'problematic prompt'")] = True,
    rounds: Annotated[
        list[int] | None, typer.Option("--round", help="only items on this candidate round (repeat; default all)")
    ] = None,
    split: Annotated[str, typer.Option(help="all, train or test")] = "all",
    test_share: Annotated[float, typer.Option(help="share of items in the test split")] = 0.1,
    preview: Annotated[bool, typer.Option(help="only count what each rule keeps")] = False,
    snapshot: Annotated[bool, typer.Option(help="freeze as a snapshot (listed in the app)")] = False,
    name: Annotated[str, typer.Option(help="snapshot name")] = "",
    ties: Annotated[bool, typer.Option(help="with --snapshot: also a file of the pairs called a tie")] = False,
    per_dimension: Annotated[bool, typer.Option(help="with --snapshot: also a file for each other dimension")] = False,
    pii: Annotated[str, typer.Option(help="with --snapshot: mask, drop or accept personal data (else refused)")] = "",
) -> None:
    """Export preference pairs as TRL-ready JSONL (to --out, or as a snapshot with --snapshot)."""
    filters = _filters(
        format=fmt,
        dimension=dimension,
        pairs=pairs,
        min_judgments=min_judgments,
        min_votes=min_votes,
        label=label,
        min_confidence=min_confidence,
        min_strength=min_strength,
        min_share=min_share,
        min_margin=min_margin,
        drop_ties=drop_ties,
        veto=veto or [],
        exclude_annotators=exclude or [],
        min_annotator_kappa=min_kappa,
        min_gold_accuracy=min_gold_accuracy,
        source=source,
        min_judge_confidence=min_judge_confidence,
        min_judge_kappa=min_judge_kappa,
        adjudicated=adjudicated,
        drop_problematic=drop_problematic,
        rounds=rounds or [],
        split=split,
        test_share=test_share,
    )
    if not (out or preview or snapshot):
        console.print("[red]error:[/red] say where: --out FILE, --snapshot or --preview")
        raise typer.Exit(2)
    settings = get_settings()
    db = make_database(settings)
    try:
        key = pseudonyms.pseudonym_key(settings.data_dir)
        if snapshot:
            parts = PartsWanted(ties=ties, per_dimension=per_dimension)
            _snapshot(db, settings, slug=project, filters=filters, name=name, key=key, parts=parts, pii=pii)
        else:
            _export(db, settings, slug=project, filters=filters, key=key, out=out)
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


def _filters(**fields: Any) -> ExportFilter:
    """The filter the options describe; a value it refuses ends the command (exit code 2)."""
    try:
        return ExportFilter(**fields)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _snapshot(
    db: Database,
    settings: Settings,
    *,
    slug: str,
    filters: ExportFilter,
    name: str,
    key: bytes,
    parts: PartsWanted,
    pii: str = "",
) -> None:
    """Record a snapshot and write it here and now (no worker), or mark it failed; ``pii``: what to do with
    personal data in it (mask, drop, accept; empty: refuse if there is any)."""
    try:
        decision = PiiDecision(choice=pii or None)
    except ValueError as exc:
        console.print("[red]error:[/red] --pii is mask, drop or accept")
        raise typer.Exit(2) from exc
    with db.session() as session:
        found = project_by_slug(session, slug)
        recorded = snapshots.create_snapshot(
            session,
            project=found,
            filters=filters,
            name=name,
            key=key,
            created_by_id=None,
            enqueue=False,
            parts=parts,
            pii=decision,
        )
        snapshot_id = recorded.id
    with console.status("writing the snapshot"):
        try:
            snapshots.write_snapshot(db, snapshot_id=snapshot_id, settings=settings)
        except Exception as exc:
            snapshots.fail_snapshot(db, snapshot_id=snapshot_id, error=f"{type(exc).__name__}: {exc}")
            raise
    with db.session(write=False) as session:
        written = snapshots.get_snapshot(session, snapshot_id=snapshot_id)
        console.print(f"snapshot {written.id}: {written.row_count} pairs, sha256 {written.sha256}")


def _export(
    db: Database, settings: Settings, *, slug: str, filters: ExportFilter, key: bytes, out: Path | None
) -> None:
    """The export into ``out`` (None: --preview, count only), with a progress bar and what each rule dropped."""
    drops: Counter[str] = Counter()
    with db.session(write=False) as session:
        found = project_by_slug(session, slug)
        rules = resolve(session, project=found, filters=filters, key=key, by_admin=True)  # an error before any work
        project_id = found.id
    columns = (TextColumn("chunks of items"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("export", total=None)
        made = stream.jsonl_blocks(
            settings,
            project_id=project_id,
            filters=filters,
            drops=drops,
            on_chunk=lambda done, total: bar.update(task, completed=done, total=total),
            excluded=rules.excluded,
            key=key,
        )
        if out is None:  # --preview: count only
            for _ in made:
                pass
        else:
            _write(out, made)
    _report(drops, rules.excluded_pseudonyms)
    if out is not None:
        console.print(f"wrote {drops['_kept']} pairs to {out}")


def _write(path: Path, blocks: Iterator[bytes]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        with tmp.open("wb") as f:
            for block in blocks:
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _report(drops: Counter[str], excluded: list[str]) -> None:
    table = Table(title="what the filter kept")
    table.add_column("step")
    table.add_column("pairs", justify="right")
    table.add_row("items", str(drops["_items"]))
    table.add_row("pairs with votes", str(drops["_candidate_pairs"]))
    for reason in DROP_REASONS:
        table.add_row(f"− {reason}", str(drops[reason]))
    table.add_row("kept", str(drops["_kept"]))
    console.print(table)
    if excluded:
        console.print(f"votes ignored from: {', '.join(excluded)}")
