"""PLACEHOLDER — replaced by the auth work."""

import typer

users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
