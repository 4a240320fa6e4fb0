"""The `hearth` command."""

from __future__ import annotations

from typing import Any

import typer

from hearth.cli.keys import keys_app
from hearth.cli.users import users_app


class _Hearth(typer.Typer):
    """The CLI app: a server that cannot be reached, from any client command, is one line, not a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import httpx

        try:
            return super().__call__(*args, **kwargs)
        except httpx.TransportError as exc:
            from hearth.cli.http import unreachable_message

            typer.secho(unreachable_message(exc), fg="red", err=True)
            raise SystemExit(1) from None


app = _Hearth(
    help="Hearth: a self-hosted AI platform. OpenAI-compatible gateway, assistant, agents and planner. "
    "Data and config live in one home folder (HEARTH_HOME; `hearth env` shows it).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

# Importing a command module registers its commands on `app`.
from hearth.cli import (  # noqa: E402,F401
    agents,  # hearth crew, mcp (and ask --agent router)
    bench,  # hearth bench …
    chat,  # hearth chat
    conversations,  # hearth conversations …
    env,  # hearth env
    finetune,  # hearth finetune (the training stack loads only when it runs)
    me,  # hearth me export|erase
    models,  # hearth models [add|set|remove]
    plan,  # hearth plan …
    rag,  # hearth ingest, ask, rag …
    reports,  # hearth usage, audit
    serve,  # hearth serve
    tips,  # hearth tips …
    voice,  # hearth transcribe, speak, voice
    workflows,  # hearth run …
)
