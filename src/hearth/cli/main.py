"""The `hearth` command."""

from __future__ import annotations

import typer

from hearth.cli.keys import keys_app
from hearth.cli.users import users_app

app = typer.Typer(
    help="Hearth: a self-hosted AI platform. OpenAI-compatible gateway, assistant, agents and planner.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

# Importing a command module registers its commands on `app`.
from hearth.cli import (  # noqa: E402,F401
    bench,  # hearth bench …
    chat,  # hearth chat
    models,  # hearth models [add|set|remove]
    plan,  # hearth plan …
    rag,  # hearth ingest, ask, rag …
    reports,  # hearth usage, audit
    serve,  # hearth serve
    voice,  # hearth transcribe, speak, voice
)
