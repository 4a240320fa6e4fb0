"""`hearth me export|erase`: the key's own data, as one archive or erased for good."""

from __future__ import annotations

from pathlib import Path

import httpx
import typer

from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with, unreachable
from hearth.cli.main import app

me_app = typer.Typer(help="Your own data: export it as one archive, or erase it.", no_args_is_help=True)
app.add_typer(me_app, name="me")


@me_app.command("export")
def export(
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the zip archive."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Download everything Hearth holds about you (every context, your files) as a zip archive."""
    base, headers = endpoint(url, api_key)
    part = output.with_name(output.name + ".part")
    try:
        with httpx.stream(
            "GET", f"{base}/api/me/export", headers=headers, timeout=httpx.Timeout(10, read=300)
        ) as r:
            if r.status_code != 200:
                r.read()
                fail_with(r)
            with part.open("wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
    except httpx.TransportError as exc:
        part.unlink(missing_ok=True)
        raise unreachable(exc) from None
    part.replace(output)  # no half-written archive under the name asked for
    typer.echo(f"wrote {output} ({output.stat().st_size} bytes)")


@me_app.command("erase")
def erase(
    confirm: str | None = typer.Option(
        None, "--confirm", help="Your username, typed out (asked for interactively when absent)."
    ),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Erase your account and everything Hearth holds about you, for good (the last admin cannot)."""
    base, headers = endpoint(url, api_key)
    if confirm is None:
        confirm = typer.prompt("This cannot be undone. Type your username to erase your account")
    try:
        r = httpx.request("DELETE", f"{base}/api/me", json={"confirm": confirm}, headers=headers, timeout=300)
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    if r.status_code != 200:
        fail_with(r)
    body = r.json()
    typer.echo(f"erased from: {', '.join(body['contexts'])}; kept records now say {body['pseudonym']}")
