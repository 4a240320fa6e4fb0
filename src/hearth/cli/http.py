"""What every client command shares: where the server is, which key to send, and one-line errors.

The server URL: --url, else HEARTH_URL, else what the server running on this home wrote
(`<home>/server.json`), else HEARTH_HOST/HEARTH_PORT, else http://127.0.0.1:8080. The key: --api-key, else
HEARTH_API_KEY, else the first admin key in the home. A refused connection is one line naming the URL tried
and how to fix it.
"""

from __future__ import annotations

import httpx
import typer

from hearth import home

URL_OPTION = typer.Option(
    None,
    "--url",
    help="Server URL (default HEARTH_URL, else the server running on HEARTH_HOME, else http://127.0.0.1:8080).",
)
KEY_OPTION = typer.Option(
    None,
    "--api-key",
    help="API key (default HEARTH_API_KEY, else the first admin key saved in HEARTH_HOME).",
)

# The last address a command resolved, so an unreachable server anywhere in a command is explained alike.
_last: home.ServerAddress | None = None


def endpoint(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The server's base URL and the Authorization header; exits with a hint when there is no key."""
    global _last
    _last = home.server_address(url)
    key = home.api_key(api_key)
    if not key:
        raise typer.BadParameter(
            f"no API key: pass --api-key, set HEARTH_API_KEY, or start the server once with `hearth serve` "
            f"(it saves the first admin key in {home.hearth_home()})",
            param_hint="--api-key",
        )
    return _last.url, {"Authorization": f"Bearer {key}"}


def unreachable_message(exc: httpx.TransportError) -> str:
    """One line: which URL was tried, where it came from, what went wrong, how to fix it."""
    tried = _last.url if _last else home.DEFAULT_URL
    source = _last.source if _last else "the default"
    try:
        request_url = exc.request.url
        tried = f"{request_url.scheme}://{request_url.netloc.decode()}"
    except RuntimeError:  # no request attached
        pass
    reason = "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" not in str(exc).lower() and str(exc):
        reason = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        reason = "timed out"
    return (
        f"error: cannot reach Hearth at {tried} (from {source}): {reason}. Start it with `hearth serve`, "
        "or point the CLI at a running server with --url or HEARTH_URL."
    )


def unreachable(exc: httpx.TransportError) -> typer.Exit:
    """Print the one-line explanation and return the exit (code 1) to raise."""
    typer.secho(unreachable_message(exc), fg="red", err=True)
    return typer.Exit(1)


def fail_with(response: httpx.Response) -> None:
    try:
        message = response.json()["error"]["message"]
    except Exception:
        message = response.text[:300]
    typer.secho(f"error {response.status_code}: {message}", fg="red", err=True)
    raise typer.Exit(1)
