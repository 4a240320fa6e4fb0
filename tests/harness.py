"""Runs a real Hearth server (uvicorn on a loopback port, in a thread) for tests that speak HTTP to it."""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
import yaml

from hearth.app import create_app
from hearth.auth.service import AuthService
from hearth.config import Settings
from hearth.platform.db import Database
from hearth.platform.migrate import upgrade
from tests.conftest import POSTGRES_DSN, postgres_url
from tests.helpers import wait_until


@dataclass
class RunningHearth:
    url: str
    admin_key: str
    settings: Settings
    app: Any

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


def server_schema(tmp_path: Path) -> str:
    """With HEARTH_TEST_DATABASE=postgres, servers run on PostgreSQL: one schema per test folder (a server
    restarted on the same folder finds its data again), dropped at exit, after the servers that pytest
    leaves running until then (atexit runs in reverse: this is registered before any of them)."""
    name = f"hearth_s_{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]}"
    if name not in SERVER_SCHEMAS:
        if not SERVER_SCHEMAS:
            atexit.register(_drop_server_schemas)
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
        SERVER_SCHEMAS.add(name)
    return name


SERVER_SCHEMAS: set[str] = set()


def _drop_server_schemas() -> None:
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for name in SERVER_SCHEMAS:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def run_hearth(
    tmp_path: Path, config: dict[str, Any] | None = None, **settings: Any
) -> Iterator[RunningHearth]:
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config_file = None
    if config is not None:
        config_file = tmp_path / "hearth.yaml"
        config_file.write_text(yaml.safe_dump(config))
    # Warming Whisper and piper costs ~7 s of CPU per server; only the voice tests ask for it.
    settings.setdefault("voice_warmup", False)
    if os.environ.get("HEARTH_TEST_DATABASE") == "postgres" and "database_url" not in settings:
        settings["database_url"] = postgres_url(server_schema(tmp_path))
    s = Settings(data_dir=data_dir, config_file=config_file, **settings)
    upgrade(s.resolved_database_url)

    async def admin() -> str:
        db = Database(s.resolved_database_url)
        try:
            key = await AuthService(db).ensure_first_admin(data_dir=data_dir)
            return key or (data_dir / "admin-key.txt").read_text().strip()
        finally:
            await db.close()

    admin_key = asyncio.run(admin())
    port = free_port()
    app = create_app(s)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True, name="hearth-test-server")
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not thread.is_alive():
            raise RuntimeError("hearth test server died during start-up")
        if not server.started:
            return False
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 60, what="hearth test server ready")
    try:
        yield RunningHearth(url, admin_key, s, app)
    finally:
        server.should_exit = True
        thread.join(15)


def remote_config(
    *upstreams: tuple[str, dict[str, Any]], alias: str = "chat", kind: str = "chat", **deployment: Any
) -> dict[str, Any]:
    """A catalogue with one alias over the given (base_url, deployment overrides) upstreams, no defaults."""
    backends = {}
    deployments = []
    for i, (url, overrides) in enumerate(upstreams):
        backends[f"up{i}"] = {"type": "openai", "base_url": url}
        deployments.append({"backend": f"up{i}", "model": f"m{i}", **deployment, **overrides})
    return {
        "include_defaults": False,
        "backends": backends,
        "aliases": {alias: {"kind": kind, "deployments": deployments}},
    }


def rag_config(chat_url: str) -> dict[str, Any]:
    """A catalogue for RAG tests, no defaults: `chat` on the upstream at `chat_url` (model m0), the embedded
    MiniLM as `embedder`, and the embedding reranker over it as `reranker`."""
    return {
        "include_defaults": False,
        "backends": {
            "up0": {"type": "openai", "base_url": chat_url},
            "local-embed": {"type": "onnx_embedding"},
            "local-rerank": {"type": "embedding_rerank", "embedder": "local-embed"},
        },
        "aliases": {
            "chat": {"kind": "chat", "deployments": [{"backend": "up0", "model": "m0"}]},
            "embedder": {"kind": "embedding", "deployments": [{"backend": "local-embed"}]},
            "reranker": {"kind": "rerank", "deployments": [{"backend": "local-rerank"}]},
        },
    }
