"""`hearth serve`: run the API server."""

from __future__ import annotations

import os
import signal
from typing import Any

import typer

from hearth.cli.main import app


def checked_settings() -> Any:
    """Settings whose model catalogue is valid, or one readable line and exit code 2: a mistake in
    hearth.yaml or a HEARTH_* variable names the file (or variable), the key path and the fix."""
    from pydantic import ValidationError

    from hearth.config import ConfigError, Settings, describe_error

    try:
        settings = Settings()
        settings.models  # noqa: B018 (loads and validates the catalogue now, not inside the server)
    except ConfigError as exc:
        typer.secho(f"hearth: configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:  # a HEARTH_* variable: its name is the first part of the key path
        variable, _, problem = describe_error(exc).partition(": ")
        typer.secho(
            f"hearth: configuration error: environment variable HEARTH_{variable.upper()}: {problem}",
            fg="red",
            err=True,
        )
        raise typer.Exit(2) from None
    return settings


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default HEARTH_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default HEARTH_PORT or 8080)."),
    workers: int = typer.Option(1, help="Worker processes. Embedded models load once per worker."),
) -> None:
    """Start the Hearth server: the OpenAI-compatible /v1 API, /api routes, /metrics, /healthz, /readyz."""
    import asyncio

    import uvicorn

    from hearth import home
    from hearth.auth.service import AuthService
    from hearth.platform.db import Database
    from hearth.platform.migrate import upgrade

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = checked_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)

    async def first_admin() -> str | None:
        db = Database(settings.resolved_database_url)
        try:
            return await AuthService(db).ensure_first_admin(data_dir=settings.data_dir)
        finally:
            await db.close()

    typer.secho(f"Hearth home: {settings.data_dir.resolve()}", fg="bright_black")
    key = asyncio.run(first_admin())
    if key:
        typer.secho(
            "Created the first admin user 'admin'. Its API key (shown once, also saved to "
            f"{settings.data_dir / 'admin-key.txt'}):",
            fg="yellow",
        )
        typer.secho(f"  {key}", bold=True)
        typer.secho(
            f"Web UI: http://{host or settings.host}:{port or settings.port}/ (sign in with this key, then "
            "set a password under Account, or run `hearth users set-password admin`)",
            fg="yellow",
        )
    host, port = host or settings.host, port or settings.port
    # Clients on this machine (every `hearth` command, `hearth env`) read the URL from the home.
    home.write_server_file(settings.data_dir, url=home.client_url(host, port))

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again to end the process: forget
    # the record then, and end as the signal would (a record left by a killed server is ignored anyway).
    def stopped(signum: int, _frame: object) -> None:
        home.remove_server_file(settings.data_dir)
        os._exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stopped)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        # After the drain: requests and streams in flight get this long to finish, then are cancelled.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    try:
        if workers > 1:
            # uvicorn's supervisor runs the workers; each shuts down gracefully, without the drain delay.
            uvicorn.run("hearth.app:create_app", factory=True, workers=workers, **options)
        else:
            from hearth.app import create_app
            from hearth.platform.server import DrainingServer

            web_app = create_app(settings)
            config = uvicorn.Config(web_app, **options)
            DrainingServer(config, web_app, drain_seconds=settings.shutdown_drain_seconds).run()
    finally:
        home.remove_server_file(settings.data_dir)
