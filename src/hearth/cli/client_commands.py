"""Commands that talk to a running Hearth server over HTTP, as any OpenAI client would."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import typer
from rich.console import Console

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
