"""`hearth models`: the models a server serves (real names, engines, health, which deployment answers now),
and admin changes at run time: `hearth models add|set|remove backend|alias NAME …`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with, unreachable
from hearth.cli.main import app

console = Console()
models_app = typer.Typer(
    help="The models the server serves; admins add, change and remove backends and aliases (persisted).",
    no_args_is_help=False,
)
app.add_typer(models_app, name="models")

WHAT = typer.Argument(..., help="backend or alias", metavar="backend|alias")
NAME = typer.Argument(..., help="The backend's or alias's name.")
_SECTIONS = {"backend": "backends", "alias": "aliases"}
DEPLOY_HELP = (
    "BACKEND or BACKEND/MODEL (the upstream's model name); repeat it: the first is the primary, the next "
    "ones are fallbacks in order."
)


def fallback_notice(source: Mapping[str, Any]) -> None:
    """One line on stderr when a fallback deployment answered (from response headers or an event)."""
    fallback = source.get("x-hearth-fallback", source.get("fallback"))
    if fallback in (None, False, "false", ""):
        return
    deployment = source.get("x-hearth-deployment") or source.get("deployment") or "?"
    reason = source.get("x-hearth-fallback-reason") or (fallback if isinstance(fallback, str) else None)
    why = f" because {reason}" if reason and reason != "true" else ""
    typer.secho(f"note: a fallback answered ({deployment}){why}", fg="yellow", err=True)


def _client(url: str | None, api_key: str | None) -> httpx.Client:
    base, headers = endpoint(url, api_key)
    return httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=120))


def _call(url: str | None, api_key: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    client = _client(url, api_key)
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    finally:
        client.close()
    if response.status_code >= 400:
        fail_with(response)
    return response


def _health(health: dict[str, Any]) -> str:
    status = health.get("status", "ok")
    if status == "ok":
        return "[green]ok[/]"
    detail = f"{health.get('consecutive_failures', 0)} failures"
    if status == "cooling_down":
        detail = f"cooling down {health.get('cooldown_seconds_left', 0):.0f}s"
    error = health.get("last_error")
    return f"[red]{detail}[/]" + (f": {escape(error)}" if error else "")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """List the aliases: each deployment's real model, engine and health, and which one serves now."""
    if ctx.invoked_subcommand is not None:
        return
    cards = _call(url, api_key, "GET", "/v1/models").json()["data"]
    table = Table("alias", "kind", "serves now", "deployments (model · engine · health)", "description")
    notes: set[str] = set()
    for card in cards:
        lines = []
        for d in card.get("deployment_details") or [{"deployment": k} for k in card.get("deployments", [])]:
            model = d.get("model", "")
            engine = d.get("engine", "")
            health = _health(d.get("health") or {})
            lines.append(f"{escape(d['deployment'])}: {escape(model)} · {engine} · {health}")
        if card.get("note"):
            notes.add(card["note"])
        serving = escape(card["serving"]) if card.get("serving") else "[red]none[/]"
        if card.get("status") == "degraded":
            serving += " [yellow](fallback)[/]"
        table.add_row(
            escape(card["id"]),
            card.get("kind", ""),
            serving,
            "\n".join(lines),
            escape(card.get("description", "")),
        )
    console.print(table)
    for note in sorted(notes):
        console.print(f"[yellow]Note:[/] {escape(note)}", highlight=False)


def _deployments(deploy: list[str], timeout: float | None, max_retries: int | None) -> list[dict[str, Any]]:
    out = []
    for priority, item in enumerate(deploy):
        backend, _, model = item.partition("/")
        d: dict[str, Any] = {"backend": backend, "priority": priority}
        if model:
            d["model"] = model
        if timeout is not None:
            d["timeout"] = timeout
        if max_retries is not None:
            d["max_retries"] = max_retries
        out.append(d)
    return out


def _spec(
    what: str,
    *,
    type_: str | None,
    base_url: str | None,
    upstream_key: str | None,
    model_path: str | None,
    lora_path: str | None,
    threads: int | None,
    n_ctx: int | None,
    kind: str | None,
    description: str | None,
    deploy: list[str],
    timeout: float | None,
    max_retries: int | None,
) -> dict[str, Any]:
    if what == "backend":
        fields = {
            "type": type_,
            "base_url": base_url,
            "api_key": upstream_key,
            "model_path": model_path,
            "lora_path": lora_path,
            "threads": threads,
            "n_ctx": n_ctx,
        }
    elif what == "alias":
        fields = {"kind": kind, "description": description}
        if deploy:
            fields["deployments"] = _deployments(deploy, timeout, max_retries)
    else:
        raise typer.BadParameter("say backend or alias", param_hint="WHAT")
    return {k: v for k, v in fields.items() if v is not None}


TYPE = typer.Option(None, "--type", help="backend: openai, llama_cpp, onnx_embedding, whisper, piper, …")
BASE_URL = typer.Option(
    None, help="backend: an OpenAI-compatible server's URL, e.g. http://127.0.0.1:11434/v1"
)
UPSTREAM_KEY = typer.Option(None, help="backend: the upstream's API key, or env:NAME to read it there.")
MODEL_PATH = typer.Option(None, help="backend: a model file (a .gguf for llama_cpp).")
LORA_PATH = typer.Option(
    None, help="backend: a LoRA adapter (.gguf, e.g. from `hearth finetune`) applied over a llama_cpp model."
)
THREADS = typer.Option(None, help="backend: CPU threads of an embedded engine.")
N_CTX = typer.Option(None, help="backend: llama_cpp context window in tokens.")
KIND = typer.Option(None, help="alias: chat, embedding, rerank, transcription or speech.")
DESCRIPTION = typer.Option(None, help="alias: what it is for.")
DEPLOY = typer.Option([], "--deploy", "-d", help=DEPLOY_HELP)
TIMEOUT = typer.Option(None, help="alias: seconds per request on each deployment.")
RETRIES = typer.Option(None, help="alias: retries on a deployment before falling back.")


@models_app.command("add")
def add(
    what: str = WHAT,
    name: str = NAME,
    type_: str | None = TYPE,
    base_url: str | None = BASE_URL,
    upstream_key: str | None = UPSTREAM_KEY,
    model_path: str | None = MODEL_PATH,
    lora_path: str | None = LORA_PATH,
    threads: int | None = THREADS,
    n_ctx: int | None = N_CTX,
    kind: str | None = KIND,
    description: str | None = DESCRIPTION,
    deploy: list[str] = DEPLOY,
    timeout: float | None = TIMEOUT,
    max_retries: int | None = RETRIES,
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Add a backend or an alias (admin). Example: `hearth models add backend ollama --type openai
    --base-url http://127.0.0.1:11434/v1`, then `hearth models add alias llama -d ollama/llama3.2`."""
    spec = _spec(
        what, type_=type_, base_url=base_url, upstream_key=upstream_key, model_path=model_path,
        lora_path=lora_path, threads=threads, n_ctx=n_ctx, kind=kind or ("chat" if what == "alias" else None),
        description=description, deploy=deploy, timeout=timeout, max_retries=max_retries,
    )  # fmt: skip
    _call(url, api_key, "POST", f"/api/admin/models/{_SECTIONS[what]}", json={"name": name, **spec})
    typer.secho(f"{what} {name} added (stored: it survives restarts)", fg="green")


@models_app.command("set")
def set_(
    what: str = WHAT,
    name: str = NAME,
    type_: str | None = TYPE,
    base_url: str | None = BASE_URL,
    upstream_key: str | None = UPSTREAM_KEY,
    model_path: str | None = MODEL_PATH,
    lora_path: str | None = LORA_PATH,
    threads: int | None = THREADS,
    n_ctx: int | None = N_CTX,
    kind: str | None = KIND,
    description: str | None = DESCRIPTION,
    deploy: list[str] = DEPLOY,
    timeout: float | None = TIMEOUT,
    max_retries: int | None = RETRIES,
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Change a backend or an alias (admin); options not given stay as they are. Example: put a real model
    before the demo one: `hearth models set alias chat -d ollama/llama3.2 -d local-llm`."""
    spec = _spec(
        what, type_=type_, base_url=base_url, upstream_key=upstream_key, model_path=model_path,
        lora_path=lora_path, threads=threads, n_ctx=n_ctx, kind=kind, description=description, deploy=deploy,
        timeout=timeout, max_retries=max_retries,
    )  # fmt: skip
    if not spec:
        raise typer.BadParameter("nothing to change: give at least one option", param_hint="options")
    _call(url, api_key, "PATCH", f"/api/admin/models/{_SECTIONS[what]}/{name}", json=spec)
    typer.secho(f"{what} {name} changed", fg="green")


@models_app.command("remove")
def remove(
    what: str = WHAT, name: str = NAME, url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION
) -> None:
    """Remove an alias, or a backend no alias uses (admin)."""
    if what not in ("backend", "alias"):
        raise typer.BadParameter("say backend or alias", param_hint="WHAT")
    _call(url, api_key, "DELETE", f"/api/admin/models/{_SECTIONS[what]}/{name}")
    typer.secho(f"{what} {name} removed", fg="green")
