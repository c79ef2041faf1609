"""The `prefstudio` command.

The few imports left inside functions are deliberate: every command (and ``--help``) imports this module, so
what only one command needs — Alembic, the web server, the demo's data — is imported by that command alone.
"""

from __future__ import annotations

import os
import sys
import threading
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.auth.service import (
    create_api_token,
    create_user,
    first_admin,
    get_user_by_username,
    list_api_tokens,
    revoke_api_token,
)
from app.config import ROOT, get_settings
from app.db import make_database
from app.export.cli import export_command
from app.generation.cli import generate_command, worker_command
from app.items.cli import import_command, import_judgments_command
from app.jobs.runner import run_worker
from app.judge.cli import judge_command
from app.kit.errors import AppError
from app.projects.deps import project_by_slug
from app.registry.cli import models_cli
from app.release.cli import release_command, verify_command
from app.training.cli import train_command

cli = typer.Typer(help="prefstudio: human preference data for DPO.", no_args_is_help=True, add_completion=False)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
user_cli = typer.Typer(help="Users.", no_args_is_help=True)
token_cli = typer.Typer(help="API tokens.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(user_cli, name="user")
cli.add_typer(token_cli, name="token")
cli.add_typer(models_cli, name="models")
console = Console(stderr=True)


def _alembic_config(url: str) -> object:
    from alembic.config import Config  # the db commands only

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    from alembic import command  # the db and demo commands only

    command.upgrade(_alembic_config(url), revision)  # type: ignore[arg-type]


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database to the newest schema (or REVISION)."""
    upgrade_database(get_settings().database_url, revision)
    console.print(f"database at {revision}")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base")]) -> None:
    """Migrate the database back to REVISION."""
    from alembic import command  # the db commands only

    command.downgrade(_alembic_config(get_settings().database_url), revision)  # type: ignore[arg-type]
    console.print(f"database at {revision}")


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_cli.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Username")],
    role: Annotated[str, typer.Option(help="admin or annotator")] = "annotator",
    display_name: Annotated[str, typer.Option(help="Shown name")] = "",
) -> None:
    """Add a user; the password is read from stdin (or asked for twice on a terminal)."""
    password = _read_password()
    try:
        with make_database(get_settings()).session() as s:
            create_user(s, username=name, password=password, role=role, display_name=display_name)
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    console.print(f"user {name} ({role}) added")


@token_cli.command("create")
def token_create(
    project: Annotated[str | None, typer.Option(help="Project slug (required for export tokens)")] = None,
    scope: Annotated[
        str, typer.Option(help="export (read-only export of one project) or api (acts as --user)")
    ] = "export",
    user: Annotated[str | None, typer.Option(help="Owner (default: the first admin)")] = None,
    name: Annotated[str, typer.Option(help="A label for the token list")] = "",
) -> None:
    """Create a token and print it once (only its keyed hash is stored)."""
    settings = get_settings()
    try:
        with make_database(settings).session() as s:
            owner = get_user_by_username(s, user) if user else first_admin(s)
            if owner is None:
                raise typer.BadParameter("no such user (or no admin yet: `prefstudio user add NAME --role admin`)")
            project_id = project_by_slug(s, project).id if project else None
            _, plain = create_api_token(s, user=owner, scope=scope, settings=settings, project_id=project_id, name=name)
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    print(plain)  # noqa: T201 - the one time the token is shown


@token_cli.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens")] = None,
    revoked: Annotated[bool, typer.Option("--revoked/--live", help="Also list revoked tokens")] = False,
) -> None:
    """List tokens of every scope: id, owner, scope, project, label, created, last used."""
    with make_database(get_settings()).session(write=False) as s:
        owner_id = None
        if user is not None:
            owner = get_user_by_username(s, user)
            if owner is None:
                console.print(f"[red]error:[/red] no user {user!r}")
                raise typer.Exit(1)
            owner_id = owner.id
        rows = [row for row in list_api_tokens(s, user_id=owner_id) if revoked or row.token.revoked_at is None]
    table = Table()
    for column in ("id", "user", "scope", "project", "label", "token", "created", "last used", "revoked"):
        table.add_column(column)
    for row in rows:
        t = row.token
        table.add_row(
            str(t.id),
            row.username,
            t.scope,
            row.project or "",
            t.name,
            t.prefix + "…",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
    Console(width=200).print(table)


@token_cli.command("revoke")
def token_revoke(
    token_ids: Annotated[list[int], typer.Argument(help="Token ids (see `prefstudio token list`)")],
) -> None:
    """Revoke tokens by id: they stop working at once."""
    try:
        with make_database(get_settings()).session() as s:
            for token_id in token_ids:
                revoke_api_token(s, token_id=token_id)
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail} (nothing revoked)")
        raise typer.Exit(1) from exc
    console.print(f"revoked {len(token_ids)} token(s)")


def _serve(host: str, port: int) -> None:
    # The serving commands only: the web server and its options.
    import uvicorn

    from app.kit.server import server_options

    # Forwarded headers (client address, scheme) only from the proxies the settings name; none by default.
    proxies = ",".join(str(network) for network in get_settings().trusted_proxy_networks)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        **server_options(get_settings()),  # deadlines for slow clients, connection limit (app.kit.server)
    )


def is_loopback(host: str) -> bool:
    """True for an interface only this machine can reach (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
) -> None:
    """Serve the web app (run `prefstudio db upgrade` first)."""
    get_settings()  # fails fast without a secret outside dev/demo
    _serve(host, port)


@cli.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    db: Annotated[Path, typer.Option(help="SQLite file")] = Path("prefstudio-demo.db"),
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Set up and exit")] = False,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Serve on a non-loopback --host (public passwords and secret!)")
    ] = False,
) -> None:
    """A demo on SQLite: bundled prompts and candidates, an admin and three annotators; then serve."""
    if not is_loopback(host) and not allow_remote:
        # The demo's logins are printed for all to see and its secret key is public: not for other machines.
        console.print(
            f"[red]error:[/red] the demo has public passwords and a public secret key; it listens on loopback only. "
            f"To serve it on {host} anyway, add --allow-remote."
        )
        raise typer.Exit(2)
    os.environ["PREFSTUDIO_ENVIRONMENT"] = "demo"
    os.environ["PREFSTUDIO_DATABASE_URL"] = f"sqlite:///{db.resolve()}"
    os.environ.setdefault("PREFSTUDIO_DATA_DIR", str(db.resolve().with_name(db.stem + "-data")))
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_database(settings.database_url)
    from app.demo.seed import seed_demo  # the demo command only

    database = make_database(settings)
    info = seed_demo(database)
    database.dispose()
    table = Table(title=f"prefstudio demo — http://{host}:{port}/")
    for column in ("user", "password", "role"):
        table.add_column(column)
    for login in info.logins:
        table.add_row(login.username, login.password, login.role)
    Console().print(table)
    Console().print(f"projects: {', '.join(info.projects)} · database: {db.resolve()}")
    if not no_serve:
        _start_background_worker()
        _serve(host, port)


def _start_background_worker() -> None:
    """The demo runs its jobs (generation, snapshots) in a thread beside the server; production runs
    `prefstudio worker` as its own process."""
    database = make_database(get_settings())
    threading.Thread(target=run_worker, args=(database,), name="demo-worker", daemon=True).start()


# The commands each domain defines beside its code.
cli.command("import")(import_command)
cli.command("import-judgments")(import_judgments_command)
cli.command("generate")(generate_command)
cli.command("judge")(judge_command)
cli.command("worker")(worker_command)
cli.command("train")(train_command)
cli.command("export")(export_command)
cli.command("release")(release_command)
cli.command("verify")(verify_command)


def main() -> None:
    cli()
