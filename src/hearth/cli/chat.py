"""`hearth chat`: one message and its streamed reply, or (with no message) an interactive conversation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import typer

from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with, unreachable
from hearth.cli.main import app
from hearth.cli.models import fallback_notice

HELP = """commands:
  /rag on|off        use your documents (RAG) for the next messages
  /collection NAME   the RAG collection to search
  /model ALIAS       the model alias to use
  /new               start a new conversation
  /history           show this conversation so far
  /exit              leave (Ctrl-D works too)
Ctrl-C while a reply streams stops that reply; the conversation goes on."""


class ChatError(Exception):
    """Something the user should read; the interactive loop prints it and carries on."""


class Conversation:
    """An interactive conversation against a server's /api/conversations routes."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        model: str | None,
        rag: bool | None,
        collection: str | None,
        max_tokens: int | None,
        temperature: float | None,
    ) -> None:
        self.client = client
        self.model = model
        self.rag = rag
        self.collection = collection
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.conversation_id: str | None = None
        self.session_id: str | None = None
        self._names: dict[str, str] = {}  # document id → file name

    def open_session(self) -> None:
        response = self.client.post("/api/sessions", json={"kind": "chat"})
        if response.status_code == 201:
            self.session_id = response.json()["id"]

    def options(self) -> dict[str, Any]:
        body: dict[str, Any] = {"session_id": self.session_id}
        for name in ("model", "rag", "collection", "max_tokens", "temperature"):
            body[name] = getattr(self, name)
        return {k: v for k, v in body.items() if v is not None}

    def send(self, text: str) -> Iterator[dict[str, Any]]:
        """Send `text` and yield the reply's events (start, delta…, message, title, done)."""
        path = (
            f"/api/conversations/{self.conversation_id}/messages"
            if self.conversation_id
            else "/api/conversations"
        )
        with self.client.stream("POST", path, json={"content": text, **self.options()}) as response:
            if response.status_code not in (200, 201):
                response.read()
                raise ChatError(_error_text(response))
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = orjson.loads(line[6:])
                if event["type"] == "start":
                    self.conversation_id = event["conversation_id"]
                yield event

    def collections(self) -> list[str]:
        """Names of the RAG collections the caller can search (owned and shared)."""
        response = self.client.get("/api/rag/collections")
        if response.status_code != 200:
            raise ChatError(_error_text(response))
        return [c["name"] for c in response.json()]

    def chat_models(self) -> list[str]:
        """The chat aliases the server offers."""
        response = self.client.get("/v1/models")
        if response.status_code != 200:
            raise ChatError(_error_text(response))
        return [c["id"] for c in response.json()["data"] if c.get("kind", "chat") == "chat"]

    def source_names(self, sources: list[dict[str, Any]]) -> list[tuple[list[int], str]]:
        """The sources of a reply as (citation numbers, file name), one line per document: a reply cites
        chunks, and several chunks of one file are one source to a reader."""
        by_document: dict[str, list[int]] = {}
        for number, source in enumerate(sources, 1):
            by_document.setdefault(source.get("document_id") or source.get("title") or "?", []).append(number)
        lines = []
        for document_id, numbers in by_document.items():
            first = sources[numbers[0] - 1]
            lines.append(
                (numbers, first.get("file") or first.get("source") or self._document_name(document_id, first))
            )
        return lines

    def _document_name(self, document_id: str, source: dict[str, Any]) -> str:
        if document_id not in self._names:
            response = self.client.get(f"/api/rag/documents/{document_id}")
            found = response.json() if response.status_code == 200 else {}
            self._names[document_id] = found.get("source") or source.get("title") or document_id
        return self._names[document_id]

    def history(self) -> list[dict[str, Any]]:
        if not self.conversation_id:
            return []
        response = self.client.get(f"/api/conversations/{self.conversation_id}")
        if response.status_code != 200:
            raise ChatError(_error_text(response))
        return response.json()["messages"]


def _error_text(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except Exception:
        message = response.text[:300]
    return f"error {response.status_code}: {message}"


def _print_reply(conversation: Conversation, events: Iterator[dict[str, Any]]) -> None:
    for event in events:
        kind = event["type"]
        if kind == "delta":
            typer.echo(event["content"], nl=False)
        elif kind == "start":
            fallback_notice(event)
            if event.get("rag"):
                count = len(event.get("sources") or [])
                typer.secho(f"[{count} sources from {event.get('collection')}]", fg="cyan")
        elif kind == "extractive_fallback":
            typer.echo()
            typer.secho(
                f"(not grounded in the sources: {event['reason']}; from the sources instead:)", fg="yellow"
            )
            typer.echo(event["content"], nl=False)
        elif kind == "message":
            typer.echo()
            sources = event["assistant"]["metadata"].get("rag_sources") or []
            for numbers, name in conversation.source_names(sources):
                typer.secho(f"  [{','.join(map(str, numbers))}] {name}", fg="cyan")
        elif kind == "title":
            typer.secho(f"(conversation: {event['title']})", fg="bright_black")
        elif kind == "error":
            typer.echo()
            raise ChatError(f"error: {event['error']['message']}")


def _refuse(message: str) -> None:
    typer.secho(message, fg="yellow", err=True)


def _choices(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _command(conversation: Conversation, line: str) -> bool:
    """Handle a /command; False means leave. Settings are checked against the server when typed, so a
    mistake is refused now, with the choices, rather than failing the next message."""
    name, _, arg = line[1:].strip().partition(" ")
    arg = arg.strip()
    if name in ("exit", "quit"):
        return False
    if name == "new":
        conversation.conversation_id = None
        typer.secho("(new conversation)", fg="bright_black")
    elif name == "rag" and arg in ("on", "off"):
        if arg == "on" and not conversation.collection:
            names = conversation.collections()
            hint = "/collection NAME" if names else "`hearth ingest FILES --collection NAME`"
            _refuse(f"RAG needs a collection first: {hint} (yours: {_choices(names)})")
            return True
        conversation.rag = arg == "on"
        typer.secho(f"(RAG {arg})", fg="bright_black")
    elif name == "collection" and arg:
        names = conversation.collections()
        if arg not in names:
            _refuse(f"no collection {arg!r}; yours: {_choices(names)}")
            return True
        conversation.collection = arg
        typer.secho(f"(collection {arg}; /rag on to use it)", fg="bright_black")
    elif name == "model" and arg:
        models = conversation.chat_models()
        if arg not in models:
            _refuse(f"no chat model {arg!r}; choose one of: {_choices(models)}")
            return True
        conversation.model = arg
        typer.secho(f"(model {arg})", fg="bright_black")
    elif name == "history":
        for message in conversation.history():
            mark = " (interrupted)" if message["status"] == "interrupted" else ""
            typer.echo(f"{message['role']}{mark}: {message['content']}")
    else:
        typer.echo(HELP)
    return True


def _interactive(conversation: Conversation) -> None:
    conversation.open_session()
    typer.secho("Hearth chat. /help for commands, /exit or Ctrl-D to leave.", fg="bright_black")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            typer.echo()
            return
        except KeyboardInterrupt:
            typer.echo()
            typer.secho("(/exit or Ctrl-D to leave)", fg="bright_black")
            continue
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not _command(conversation, line):
                    return
                continue
            _print_reply(conversation, conversation.send(line))
        except KeyboardInterrupt:
            # Leaving the stream closes the connection: the server stops generating and keeps the partial
            # reply, marked interrupted.
            typer.echo()
            typer.secho("(reply stopped)", fg="bright_black")
        except ChatError as exc:
            typer.secho(str(exc), fg="red", err=True)


def _one_shot_v1(client: httpx.Client, body: dict[str, Any]) -> None:
    """A stateless completion through /v1 (nothing stored), streamed."""
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            fail_with(response)
        fallback_notice(response.headers)
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            if "error" in chunk:
                typer.secho(f"\nerror: {chunk['error']['message']}", fg="red", err=True)
                raise typer.Exit(1)
            for choice in chunk.get("choices", []):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    typer.echo(text, nl=False)
    typer.echo()


@app.command()
def chat(
    message: str | None = typer.Argument(
        None, help="What to say. Leave out for an interactive conversation."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model alias (default: your preference, else chat)."
    ),
    system: str | None = typer.Option(None, "--system", help="A system prompt (one-shot only)."),
    max_tokens: int = typer.Option(512, help="Most tokens to generate."),
    temperature: float = typer.Option(0.7, help="Sampling temperature."),
    rag: bool | None = typer.Option(None, "--rag/--no-rag", help="Answer from your documents (RAG)."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="The RAG collection to search."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Chat with a model. With MESSAGE: one reply, streamed. Without: an interactive, stored conversation
    (history, /rag on|off, /collection NAME, /new, /exit)."""
    base, headers = endpoint(url, api_key)
    timeout = httpx.Timeout(10, read=300)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
            if message is None or rag or collection:
                conversation = Conversation(
                    client,
                    model=model,
                    rag=rag,
                    collection=collection,
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
                if message is None:
                    _interactive(conversation)
                    return
                try:
                    _print_reply(conversation, conversation.send(message))
                except ChatError as exc:
                    typer.secho(str(exc), fg="red", err=True)
                    raise typer.Exit(1) from None
                return
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": message}
            ]
            body = {
                "model": model or "chat",
                "messages": messages,
                "stream": True,
                "max_tokens": max_tokens,
                "temperature": temperature,
            }
            _one_shot_v1(client, body)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    except KeyboardInterrupt:
        typer.echo()
        raise typer.Exit(130) from None
