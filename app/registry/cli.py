"""`prefstudio models list|add --project SLUG`: the model registry from the command line, straight to the database."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from app.config import get_settings
from app.db import make_database
from app.kit.errors import AppError
from app.projects.deps import project_by_slug
from app.registry import repository, service
from app.registry.schemas import ModelIn
from app.registry.weights import weights_digest

models_cli = typer.Typer(help="The model registry of a project.", no_args_is_help=True)
console = Console(stderr=True)
ProjectOption = Annotated[str, typer.Option("--project", help="Project slug")]


def _fail(message: object) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@models_cli.command("list")
def list_command(project: ProjectOption) -> None:
    """The project's models in lineage order: parent, snapshot, run, reward accuracy, weights, endpoint."""
    db = make_database(get_settings())
    try:
        with db.session(write=False) as s:
            rows = service.lineage_rows(service.list_models(s, project=project_by_slug(s, project)))
    except AppError as exc:
        raise _fail(exc.detail) from exc
    table = Table("id", "name", "kind", "parent", "snapshot", "run", "reward acc.", "weights", "endpoint")
    for row in rows:
        m = row.model
        accuracy = service.reward_accuracy(m.metrics)
        table.add_row(
            str(m.id),
            "  " * row.depth + m.name,
            m.kind,
            m.parent_name or "",
            f"#{m.snapshot_id}" if m.snapshot_id else "",
            f"#{m.training_run_id}" if m.training_run_id else "",
            f"{accuracy:.2f}" if accuracy is not None else "",
            (m.weights_sha256 or "")[:12],
            f"{m.served_name} @ {m.base_url}" if m.base_url else "",
        )
    Console().print(table)


@models_cli.command("add")
def add_command(
    project: ProjectOption,
    name: Annotated[str, typer.Option(help="A name unique in the project")],
    kind: Annotated[str, typer.Option(help="sft, checkpoint or other")] = "other",
    uri: Annotated[str, typer.Option(help="Where the weights are: a directory (hashed) or a hub name")] = "",
    parent: Annotated[str | None, typer.Option(help="Name of the registered model it was trained from")] = None,
    snapshot: Annotated[int | None, typer.Option(help="Id of the snapshot it was trained on")] = None,
    weights_sha256: Annotated[str | None, typer.Option(help="The weights digest, if not computed from --uri")] = None,
    base_url: Annotated[str | None, typer.Option(help="vLLM server that serves it")] = None,
    served_name: Annotated[str | None, typer.Option(help="The name the server serves it under")] = None,
) -> None:
    """Register a model by hand (its weights are hashed when --uri is a local directory)."""
    settings = get_settings()
    db = make_database(settings)
    try:
        with db.session() as s:
            found = project_by_slug(s, project)
            parent_model = repository.model_by_name(s, found, parent) if parent else None
            if parent and parent_model is None:
                raise _fail(f"no model named {parent!r} in {project}")
            data = ModelIn(
                name=name,
                kind=kind,  # checked by the model
                uri=uri,
                parent_id=parent_model.id if parent_model else None,
                snapshot_id=snapshot,
                weights_sha256=weights_sha256 or (weights_digest(uri) if uri else None),
                base_url=base_url,
                served_name=served_name,
            )
            allow_private = bool(settings.allow_private_model_servers)
            model = service.add_model(s, project=found, data=data, user_id=None, allow_private=allow_private)
            console.print(
                f"registered model #{model.id} {model.name!r} (weights {model.weights_sha256 or 'not hashed'})"
            )
    except AppError as exc:
        raise _fail(exc.detail) from exc
    except ValidationError as exc:
        raise _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
