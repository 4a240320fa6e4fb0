"""Commands that talk to a running Hearth server over HTTP, as any OpenAI client would."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.table import Table

from hearth.cli.main import app

console = Console()

URL_OPTION = typer.Option(None, "--url", help="Server URL (default HEARTH_URL or http://127.0.0.1:8080).")
KEY_OPTION = typer.Option(
    None,
    "--api-key",
    help="API key (default HEARTH_API_KEY, else the first admin key saved in the data directory).",
)


def endpoint(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("HEARTH_URL") or "http://127.0.0.1:8080").rstrip("/")
    key = api_key or os.environ.get("HEARTH_API_KEY")
    if not key:
        saved = Path(os.environ.get("HEARTH_DATA_DIR", "./data")) / "admin-key.txt"
        if saved.exists():
            key = saved.read_text().strip()
    if not key:
        raise typer.BadParameter("no API key: pass --api-key or set HEARTH_API_KEY", param_hint="--api-key")
    return base, {"Authorization": f"Bearer {key}"}


def fail_with(response: httpx.Response) -> None:
    try:
        message = response.json()["error"]["message"]
    except Exception:
        message = response.text[:300]
    typer.secho(f"error {response.status_code}: {message}", fg="red", err=True)
    raise typer.Exit(1)


@app.command()
def models(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """List the model aliases the server offers and where each is deployed."""
    base, headers = endpoint(url, api_key)
    try:
        response = httpx.get(f"{base}/v1/models", headers=headers, timeout=30)
    except httpx.TransportError as exc:
        typer.secho(f"cannot reach {base}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if response.status_code != 200:
        fail_with(response)
    table = Table("alias", "kind", "deployments", "description")
    for card in response.json()["data"]:
        table.add_row(
            card["id"],
            card.get("kind", ""),
            ", ".join(card.get("deployments", [])),
            card.get("description", ""),
        )
    console.print(table)
