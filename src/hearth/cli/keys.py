"""`hearth keys`: create, list and revoke API keys, straight against the configured database."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import typer
from rich.table import Table

from hearth.cli.users import err, out, print_table, run_auth

keys_app = typer.Typer(help="Manage API keys (works on the database directly).", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@keys_app.command("create")
def create(
    user: str = typer.Option(..., "--user", help="Owner's username."),
    name: str = typer.Option("", "--name", help="A label to recognise the key by."),
    priority: Literal["standard", "premium"] | None = typer.Option(
        None, "--priority", help="Scheduling class. Default: premium for premium users, else standard."
    ),
    rpm: int | None = typer.Option(
        None, "--rpm", min=1, help="Requests per minute. Default: server default."
    ),
    tpm: int | None = typer.Option(None, "--tpm", min=1, help="Tokens per minute. Default: server default."),
) -> None:
    """Create a key and print it once (on stdout; it cannot be shown again)."""
    key, token = run_auth(
        lambda auth: auth.create_key(
            username=user, name=name, priority=priority, rpm_limit=rpm, tpm_limit=tpm
        ),
        create=True,
    )
    err.print(f"created key {key.id} for {user} (priority {key.priority}); store it now:", highlight=False)
    # Plain echo, alone on stdout, so `KEY=$(hearth keys create ...)` works and nothing wraps it.
    typer.echo(token)


@keys_app.command("list")
def list_keys(
    user: str | None = typer.Option(None, "--user", help="Only this user's keys."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the IDs, one a line, newest first."),
) -> None:
    """List keys (never the keys themselves: only their prefixes)."""
    keys = run_auth(lambda auth: auth.list_keys(username=user))
    if quiet:
        for k in reversed(keys):  # listed oldest first
            typer.echo(k.id)
        return
    table = Table("ID", "User", "Name", "Prefix", "Priority", "RPM", "TPM", "Last used", "Status")
    table.columns[0].no_wrap = True
    table.columns[3].no_wrap = True
    for k in keys:
        table.add_row(
            k.id,
            k.username,
            k.name,
            k.prefix + "…",
            k.priority,
            str(k.rpm_limit) if k.rpm_limit is not None else "default",
            str(k.tpm_limit) if k.tpm_limit is not None else "default",
            _when(k.last_used_at),
            "active" if k.active else f"revoked {_when(k.revoked_at)}",
        )
    print_table(table)


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's ID, as `hearth keys list` shows it.")) -> None:
    """Revoke a key. Servers stop accepting it within their auth cache time (seconds)."""
    key = run_auth(lambda auth: auth.revoke_key(key_id=key_id))
    out.print(f"revoked key {key.id} ({key.prefix}…) of {key.username}", highlight=False)
