"""Hearth's home: the one folder that holds its data and config, and what a running server tells its clients.

`HEARTH_HOME` when set (`HEARTH_DATA_DIR`, its older name, is read too), else the per-user data directory
(`~/.local/share/hearth` on Linux, via platformdirs). It never depends on the current directory, so the server
and every `hearth` command, run from anywhere, agree on one database, one admin key and one `hearth.yaml`.

The home holds: `hearth.db` (SQLite), `admin-key.txt` (the first admin key, 0600), `hearth.yaml` (the model
catalogue, optional), `.env` (optional `HEARTH_*` settings), `server.json` (the URL of the server running on
it), `rag/`, `voice/`, and the default output folders `plan/` and `bench-results/`.

This module imports nothing heavy: every CLI command resolves the home before anything else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ADMIN_KEY_FILE = "admin-key.txt"
SERVER_FILE = "server.json"
CONFIG_FILE = "hearth.yaml"
DEFAULT_URL = "http://127.0.0.1:8080"


def hearth_home() -> Path:
    """The home folder (not created here): HEARTH_HOME, else HEARTH_DATA_DIR, else the per-user data dir."""
    for name in ("HEARTH_HOME", "HEARTH_DATA_DIR"):
        value = os.environ.get(name)
        if value:
            return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("hearth", appauthor=False))


def default_config_file(home: Path) -> Path | None:
    """`<home>/hearth.yaml` when it exists (HEARTH_CONFIG_FILE, read by Settings, names another one)."""
    path = home / CONFIG_FILE
    return path if path.exists() else None


# ---- what the server writes for its clients --------------------------------------------------------------


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to host:port (a wildcard means loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write_server_file(home: Path, *, url: str) -> Path:
    """Record the URL of the server now starting on this home, with its process id."""
    path = home / SERVER_FILE
    # A temporary name of this process's own: replicas sharing a home (scale-out on one host) start together,
    # and with one shared name one's rename could take the other's file away from under it.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    tmp.replace(path)
    return path


def remove_server_file(home: Path) -> None:
    """Forget the server file if this process wrote it (another server may have taken the home since)."""
    path = home / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def running_server_url(home: Path) -> str | None:
    """The URL in `<home>/server.json` if the process that wrote it still runs (else the file is stale)."""
    try:
        data = json.loads((home / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not _alive(data.get("pid")):
        return None
    return data["url"]


# ---- what clients use ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerAddress:
    url: str
    source: str  # where the URL came from, for error messages: "--url", "HEARTH_URL", a file, "the default"


def server_address(url: str | None = None) -> ServerAddress:
    """Where the CLI sends requests: --url, else HEARTH_URL, else the URL the server running on this home
    wrote, else HEARTH_HOST/HEARTH_PORT, else http://127.0.0.1:8080."""
    if url:
        return ServerAddress(url.rstrip("/"), "--url")
    if os.environ.get("HEARTH_URL"):
        return ServerAddress(os.environ["HEARTH_URL"].rstrip("/"), "HEARTH_URL")
    home = hearth_home()
    written = running_server_url(home)
    if written:
        return ServerAddress(written.rstrip("/"), str(home / SERVER_FILE))
    host, port = os.environ.get("HEARTH_HOST"), os.environ.get("HEARTH_PORT")
    if host or port:
        return ServerAddress(client_url(host or "127.0.0.1", int(port or 8080)), "HEARTH_HOST/HEARTH_PORT")
    return ServerAddress(DEFAULT_URL, "the default")


def api_key(key: str | None = None) -> str | None:
    """--api-key, else HEARTH_API_KEY, else the first admin key the server saved in the home."""
    if key:
        return key
    if os.environ.get("HEARTH_API_KEY"):
        return os.environ["HEARTH_API_KEY"]
    saved = hearth_home() / ADMIN_KEY_FILE
    try:
        return saved.read_text().strip() or None
    except OSError:
        return None
