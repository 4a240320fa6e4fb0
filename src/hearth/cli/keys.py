"""PLACEHOLDER — replaced by the auth work."""

import typer

keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
