"""`hearth tips …`: the next tip and feedback on it, the profile (preferences, contexts, consents), connectors
and the agent registry, all through the running server's /api/tips routes as the key's user."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import typer
from rich.table import Table

from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with, unreachable
from hearth.cli.main import app
from hearth.cli.users import print_table

tips_app = typer.Typer(
    help="Tips: the next tip, feedback, your profile, connectors and agents.", no_args_is_help=True
)
profile_app = typer.Typer(help="Preferences, contexts and consents.", no_args_is_help=True)
tips_app.add_typer(profile_app, name="profile")
app.add_typer(tips_app, name="tips")


def _call(url: str | None, api_key: str | None, method: str, path: str, **kwargs: Any) -> Any:
    base, headers = endpoint(url, api_key)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=300)) as client:
            response = client.request(method, f"/api/tips{path}", **kwargs)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    if response.status_code >= 400:
        fail_with(response)
    return response.json() if response.content else None


def _print_tip(tip: dict[str, Any]) -> None:
    typer.secho(tip["text"], bold=True)
    how = f"fallback: {tip['fallback_reason']}" if tip["fallback"] else tip["model"]
    typer.echo(
        f"id {tip['id']} · agents {', '.join(tip['contributing_agents'])} · {tip['prompt_version']} · "
        f"{how} · "
        f"{tip['latency_ms']:.0f} ms (assembly {tip['assembly_ms']:.1f} ms)"
    )


@tips_app.command("next")
def next_tip(
    candidates: int = typer.Option(
        1, "--candidates", min=1, max=3, help="Tips to generate; the judge picks."
    ),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Ask for one tip now."""
    _print_tip(_call(url, api_key, "POST", "/next", json={"candidates": candidates}))


def _until(value: str) -> str:
    """An ISO date-time, or a duration from now such as 30m, 2h or 1d."""
    match = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return (datetime.now(UTC) + timedelta(**{unit: int(match.group(1))})).isoformat()
    return value


@tips_app.command("feedback")
def feedback(
    tip_id: str = typer.Argument(..., help="The tip's id (shown by `hearth tips next`)."),
    action: str = typer.Argument(..., help="done | snooze | dismiss"),
    until: str | None = typer.Option(
        None, "--until", help="snooze: an ISO date-time or a duration (2h, 1d)."
    ),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Say what you did with a tip: done (also at the task's source), snooze --until, or dismiss."""
    body: dict[str, Any] = {"action": action}
    if until is not None:
        body["until"] = _until(until)
    out = _call(url, api_key, "POST", f"/{tip_id}/feedback", json=body)
    extra = " (marked done at its source)" if out["source_closed"] else ""
    typer.echo(f"{out['action']}{extra}")
    if out.get("source_error"):
        typer.secho(out["source_error"], fg="yellow")


@tips_app.command("agents")
def agents(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """The registered agents and whether each may contribute to your tips now."""
    table = Table("Agent", "Version", "Consents", "Every", "TTL", "Eligible")
    for a in _call(url, api_key, "GET", "/agents"):
        eligible = "yes" if a["eligible"] else f"no: {a['reason']}"
        table.add_row(
            a["id"],
            a["version"],
            ", ".join(a["consents"]) or "-",
            f"{a['schedule_minutes']:g} min",
            f"{a['ttl_minutes']:g} min",
            eligible,
        )
    print_table(table)


@tips_app.command("connect")
def connect(
    kind: str = typer.Argument(..., help="todoist | markdown | ics"),
    path: str | None = typer.Argument(None, help="markdown/ics: a file under <home>/tips."),
    token: str | None = typer.Option(None, "--token", help="todoist: your API token (stored encrypted)."),
    name: str | None = typer.Option(None, "--name", help="A name to show for it."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Connect a source of signals: Todoist, or a Markdown task list or .ics calendar in the tips folder."""
    body = {
        k: v for k, v in {"kind": kind, "path": path, "token": token, "name": name}.items() if v is not None
    }
    out = _call(url, api_key, "POST", "/connectors", json=body)
    typer.echo(f"connected {out['kind']} {out['id']}; run `hearth tips sync` to fetch now")


@tips_app.command("connectors")
def connectors(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Your connectors, their state and what they fetched."""
    _print_connectors(_call(url, api_key, "GET", "/connectors"))


@tips_app.command("sync")
def sync(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Fetch from every connector now (a failing one shows its error; the others still sync)."""
    _print_connectors(_call(url, api_key, "POST", "/sync"))


def _print_connectors(rows: list[dict[str, Any]]) -> None:
    table = Table("ID", "Kind", "Name", "Status", "Signals", "Last error")
    table.columns[0].no_wrap = True
    for c in rows:
        signals = ", ".join(f"{k} {v}" for k, v in sorted(c["signals"].items())) or "-"
        table.add_row(c["id"], c["kind"], c["name"], c["status"], signals, c["last_error"] or "")
    print_table(table)


@profile_app.command("show")
def profile_show(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Your preferences, contexts and consents."""
    p = _call(url, api_key, "GET", "/profile")
    for key, value in p["preferences"].items():
        typer.echo(f"{key}: {value}")
    names = [c["name"] + (" (active)" if c["active"] else "") for c in p["contexts"]]
    typer.echo(f"contexts: {', '.join(names) or '-'}")
    for c in p["consents"]:
        typer.echo(f"consent {c['key']}: {'granted' if c['granted'] else 'not granted'}")


@profile_app.command("set")
def profile_set(
    tone: str | None = typer.Option(None, "--tone"),
    tip_length: str | None = typer.Option(None, "--tip-length", help="short | medium | long"),
    language: str | None = typer.Option(None, "--language"),
    timezone: str | None = typer.Option(None, "--timezone", help="An IANA zone, e.g. Europe/Paris."),
    work_start: str | None = typer.Option(None, "--work-start", help="HH:MM"),
    work_end: str | None = typer.Option(None, "--work-end", help="HH:MM"),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Change preferences (only the options given)."""
    values = {"tone": tone, "tip_length": tip_length, "language": language, "timezone": timezone}
    values |= {"work_start": work_start, "work_end": work_end}
    body = {k: v for k, v in values.items() if v is not None}
    if not body:
        raise typer.BadParameter("give at least one option to change")
    for key, value in _call(url, api_key, "PATCH", "/profile/preferences", json=body).items():
        typer.echo(f"{key}: {value}")


@profile_app.command("consent")
def profile_consent(
    key: str = typer.Argument(..., help="e.g. tasks.read, tasks.write, calendar.read, history.read"),
    decision: str = typer.Argument(..., help="grant | revoke"),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Grant or revoke a consent (revoking deletes the outputs of agents that need it)."""
    if decision not in ("grant", "revoke"):
        raise typer.BadParameter("grant or revoke", param_hint="DECISION")
    out = _call(url, api_key, "PUT", f"/profile/consents/{key}", json={"granted": decision == "grant"})
    typer.echo(f"{out['key']}: {'granted' if out['granted'] else 'revoked'}")


@profile_app.command("context")
def profile_context(
    name: str = typer.Argument(..., help='A context name, e.g. "on vacation".'),
    description: str = typer.Option("", "--description"),
    activate: bool = typer.Option(False, "--activate", help="Also make it the active context."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Create a context (or change its description), optionally making it active."""
    _call(url, api_key, "PUT", f"/profile/contexts/{name}", json={"description": description})
    if activate:
        _call(url, api_key, "PUT", "/profile/active-context", json={"name": name})
    typer.echo(f"context {name}{' (active)' if activate else ''}")


@profile_app.command("activate")
def profile_activate(
    name: str = typer.Argument(..., help='A context name, or "none" for no active context.'),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Make a context the active one (agents it silences stay quiet)."""
    out = _call(
        url, api_key, "PUT", "/profile/active-context", json={"name": None if name == "none" else name}
    )
    typer.echo(f"active context: {out['active_context'] or 'none'}")
