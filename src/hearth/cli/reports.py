"""`hearth usage` and `hearth audit`: the server's usage ledger and audit log (admin key), as tables."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from hearth.cli.client_commands import KEY_OPTION, URL_OPTION, console, endpoint, fail_with
from hearth.cli.http import unreachable
from hearth.cli.main import app
from hearth.cli.users import print_table


def _get(url: str | None, api_key: str | None, path: str, params: dict[str, Any]) -> dict[str, Any]:
    base, headers = endpoint(url, api_key)
    query = {name: value for name, value in params.items() if value is not None}
    try:
        response = httpx.get(f"{base}{path}", params=query, headers=headers, timeout=30)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    if response.status_code != 200:
        fail_with(response)
    return response.json()


@app.command()
def usage(
    day: str | None = typer.Option(None, "--day", help="One UTC day, YYYY-MM-DD."),
    since: str | None = typer.Option(None, "--since", help="First UTC day, YYYY-MM-DD."),
    until: str | None = typer.Option(None, "--until", help="Last UTC day (inclusive), YYYY-MM-DD."),
    user: str | None = typer.Option(None, "--user", help="Only this user's calls."),
    key_id: str | None = typer.Option(None, "--key-id", help="Only calls with this API key."),
    alias: str | None = typer.Option(None, "--alias", help="Only calls to this model alias."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Requests, failures and tokens per day, user, key and alias (needs an admin key)."""
    params = {"day": day, "since": since, "until": until, "user": user, "key_id": key_id, "alias": alias}
    report = _get(url, api_key, "/api/admin/usage", params)
    table = Table("day", "user", "key", "alias", "requests", "failures", "prompt", "completion")
    for column in table.columns[4:]:
        column.justify = "right"
    for line in report["data"]:
        table.add_row(
            line["day"],
            line["username"] or line["user_id"],
            line["key_id"] or "-",
            line["alias"],
            *(str(line[n]) for n in ("requests", "failures", "prompt_tokens", "completion_tokens")),
        )
    totals = report["totals"]
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        "",
        *(str(totals[n]) for n in ("requests", "failures", "prompt_tokens", "completion_tokens")),
    )
    print_table(table)


@app.command()
def audit(
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. key.revoked."),
    actor: str | None = typer.Option(None, "--actor", help="Only actions by this admin (username)."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Entries per page."),
    page: int = typer.Option(1, "--page", min=1, help="Page number, newest first."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Admin actions, newest first: users, keys, collection shares, plan deploys (needs an admin key)."""
    params = {"action": action, "actor": actor, "limit": limit, "offset": (page - 1) * limit}
    listing = _get(url, api_key, "/api/admin/audit", params)
    table = Table("when (UTC)", "action", "actor", "target", "details")
    for entry in listing["data"]:
        details = ", ".join(f"{k}={v}" for k, v in entry["details"].items() if v is not None)
        table.add_row(entry["occurred_at"][:19].replace("T", " "), entry["action"], entry["actor"] or "-",
                      entry["target"], details)  # fmt: skip
    print_table(table)
    if listing["has_more"]:
        console.print(f"more: --page {page + 1}", style="dim")
