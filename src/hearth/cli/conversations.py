"""`hearth conversations list|show|resume`: the stored conversations of the key's user."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from hearth.cli.chat import ChatError, Conversation, _interactive
from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with, unreachable
from hearth.cli.main import app
from hearth.cli.users import print_table

conversations_app = typer.Typer(help="List, show and resume stored chat conversations.", no_args_is_help=True)
app.add_typer(conversations_app, name="conversations")


def _client(url: str | None, api_key: str | None) -> httpx.Client:
    base, headers = endpoint(url, api_key)
    return httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=300))


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    if response.status_code != 200:
        fail_with(response)
    return response.json()


def _print_messages(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        mark = " (interrupted)" if message["status"] == "interrupted" else ""
        colour = "green" if message["role"] == "user" else None
        typer.secho(f"{message['role']}{mark}:", fg=colour, bold=True)
        typer.echo(message["content"])


@conversations_app.command("list")
def list_conversations(
    limit: int = typer.Option(50, "--limit", min=1, max=200, help="Most conversations to show."),
    search: str | None = typer.Option(None, "--search", "-s", help="Only those whose text matches."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Your conversations, most recent first."""
    with _client(url, api_key) as client:
        if search:
            items = [hit["conversation"] for hit in _get(client, "/api/conversations/search", q=search)]
        else:
            items = _get(client, "/api/conversations", limit=limit)
    table = Table("ID", "Title", "Messages", "Updated (UTC)")
    table.columns[0].no_wrap = True
    for c in items:
        table.add_row(c["id"], c["title"], str(c["message_count"]), c["updated_at"][:16].replace("T", " "))
    print_table(table)


@conversations_app.command("show")
def show(
    conversation_id: str = typer.Argument(..., help="Its ID (see `hearth conversations list`)."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Print a conversation's messages."""
    with _client(url, api_key) as client:
        detail = _get(client, f"/api/conversations/{conversation_id}")
    typer.secho(detail["title"], bold=True)
    _print_messages(detail["messages"])


@conversations_app.command("resume")
def resume(
    conversation_id: str = typer.Argument(..., help="Its ID (see `hearth conversations list`)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model alias for the next replies."),
    last: int = typer.Option(4, "--last", min=0, help="Earlier messages to print first."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Carry on an earlier conversation interactively (the model sees its history)."""
    with _client(url, api_key) as client:
        detail = _get(client, f"/api/conversations/{conversation_id}")
        typer.secho(f"(resuming: {detail['title']})", fg="bright_black")
        if last:
            _print_messages(detail["messages"][-last:])
        conversation = Conversation(
            client, model=model, rag=None, collection=None, max_tokens=None, temperature=None
        )
        conversation.conversation_id = detail["id"]
        try:
            _interactive(conversation)
        except ChatError as exc:
            typer.secho(str(exc), fg="red", err=True)
            raise typer.Exit(1) from None
