"""`hearth users`: create and list users, straight against the database named by HEARTH_* settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # imported when a command runs: `hearth --help` and other commands start faster
    from hearth.auth.service import AuthService

T = TypeVar("T")

users_app = typer.Typer(help="Manage users (works on the database directly).", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print an error and return the exit to raise (code 1)."""
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def print_table(table: Table) -> None:
    """Print a table; piped output is not squeezed to 80 columns, so IDs stay whole for grep and scripts."""
    (out if out.is_terminal else Console(width=200)).print(table)


def run_auth(work: Callable[[AuthService], Awaitable[T]], *, create: bool = False) -> T:
    """Migrate the configured database, run `work` with an AuthService on it, and map errors to exit 1.
    Only commands that create something (`create`) may start a new SQLite database in the home."""
    from sqlalchemy.exc import SQLAlchemyError

    from hearth.auth.service import AuthService
    from hearth.config import Settings
    from hearth.events.bus import EventBus
    from hearth.platform.db import Database
    from hearth.platform.errors import HearthError
    from hearth.platform.migrate import upgrade

    try:
        settings = Settings()
        url = settings.resolved_database_url
    except Exception as exc:  # a bad setting
        raise fail(f"cannot read the settings: {exc}") from None
    database = settings.data_dir / "hearth.db"
    if settings.database_url is None and not create and not database.exists():
        # Never start an empty database by accident (a wrong folder would show no users and no keys).
        raise fail(
            f"no Hearth database in {settings.data_dir.resolve()} (the home: HEARTH_HOME, see `hearth env`). "
            "Start the server once with `hearth serve` to create it, or set HEARTH_HOME to the home it uses."
        )
    try:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(url)
    except Exception as exc:  # a bad URL, an unreachable server, an unwritable data dir
        raise fail(f"cannot open the database: {exc}") from None

    async def go() -> T:
        from hearth.platform.shared import SharedState

        db = Database(url)
        # With a bus, admin actions from the command line reach the audit log like the API's: the
        # events wait in the outbox until a server's bus delivers them.
        auth = AuthService(db, bus=EventBus(db))
        # With Redis, a key revoked or a user disabled here is dropped by every running replica at once.
        shared = SharedState(settings.redis_url, prefix=settings.redis_prefix) if settings.redis_url else None
        auth.shared = shared
        try:
            return await work(auth)
        finally:
            if shared is not None:
                await shared.close()
            await db.close()

    try:
        return asyncio.run(go())
    except HearthError as exc:
        raise fail(exc.message) from None
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"database error: {exc}") from None


@users_app.command("create")
def create(
    name: str = typer.Argument(..., help="Username: 1-64 letters, digits, '_', '.' or '-'."),
    admin: bool = typer.Option(False, "--admin", help="Give the user the admin role."),
    premium: bool = typer.Option(
        False, "--premium", help="Premium user: new keys default to premium priority."
    ),
) -> None:
    """Create a user."""
    user = run_auth(
        lambda auth: auth.create_user(username=name, role="admin" if admin else "user", premium=premium),
        create=True,
    )
    flags = ", premium" if user.premium else ""
    out.print(f"created user {user.username} (id {user.id}, role {user.role}{flags})", highlight=False)


@users_app.command("list")
def list_users() -> None:
    """List users."""
    users = run_auth(lambda auth: auth.list_users())
    table = Table("ID", "Username", "Role", "Premium", "Status", "Created")
    table.columns[0].no_wrap = True
    for u in users:
        table.add_row(
            u.id,
            u.username,
            u.role,
            "yes" if u.premium else "no",
            "disabled" if u.disabled else "active",
            u.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    print_table(table)


@users_app.command("set-password")
def set_password(
    name: str = typer.Argument(..., help="The user whose web sign-in password to set."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input instead of prompting."
    ),
) -> None:
    """Set or reset a user's password for the web UI (their other password sessions end)."""
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    run_auth(lambda auth: auth.web.set_password(username=name, password=password))
    out.print(f"password set for {name}", highlight=False)


def _set_disabled(name: str, disabled: bool) -> None:
    async def work(auth: AuthService) -> None:
        user = await auth.get_user_by_name(username=name)
        if user is None:
            raise fail(f"no user {name!r}")
        await auth.set_user_disabled(user_id=user.id, disabled=disabled)

    run_auth(work)
    out.print(f"{name} {'disabled' if disabled else 'enabled'}", highlight=False)


@users_app.command("disable")
def disable(name: str = typer.Argument(..., help="The user to disable.")) -> None:
    """Disable a user: their keys and web sessions stop working (a running server notices within seconds)."""
    _set_disabled(name, True)


@users_app.command("enable")
def enable(name: str = typer.Argument(..., help="The user to enable again.")) -> None:
    """Enable a disabled user again."""
    _set_disabled(name, False)
