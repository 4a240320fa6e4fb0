"""`hearth env`: where this machine's Hearth keeps its data and config, and how clients reach its server."""

from __future__ import annotations

import shlex

import typer

from hearth import home
from hearth.cli.main import app


@app.command()
def env(
    only_home: bool = typer.Option(False, "--home", help="Print only the home folder's path."),
) -> None:
    """Print HEARTH_HOME, HEARTH_URL and HEARTH_API_KEY as shell exports: `eval "$(hearth env)"` sets them for
    curl and OpenAI clients (the `hearth` commands find them by themselves)."""
    folder = home.hearth_home()
    if only_home:
        typer.echo(folder)
        return
    address = home.server_address()
    key = home.api_key()
    typer.echo(f"export HEARTH_HOME={shlex.quote(str(folder))}")
    typer.echo(f"export HEARTH_URL={shlex.quote(address.url)}  # from {address.source}")
    if key:
        typer.echo(f"export HEARTH_API_KEY={shlex.quote(key)}")
    else:
        typer.echo(f"# no API key yet: `hearth serve` saves the first admin key in {folder}", err=True)
