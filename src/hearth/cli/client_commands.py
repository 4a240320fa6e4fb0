"""Commands that talk to a running Hearth server over HTTP, as any OpenAI client would."""

from __future__ import annotations

import httpx
from rich.console import Console
from rich.table import Table

from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with, unreachable
from hearth.cli.main import app

__all__ = ["KEY_OPTION", "URL_OPTION", "console", "endpoint", "fail_with"]

console = Console()


@app.command()
def models(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """List the model aliases the server offers and where each is deployed."""
    base, headers = endpoint(url, api_key)
    try:
        response = httpx.get(f"{base}/v1/models", headers=headers, timeout=30)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
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
