"""Several `hearth serve` replicas on one PostgreSQL, Redis and NATS, behind an nginx load balancer that the
test starts itself (its own config, pid and logs in a temporary folder, in the foreground as a child)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness import free_port
from tests.helpers import wait_until
from tests.serve_helpers import clean_env

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Replica:
    """One `hearth serve` process."""

    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Cluster:
    home: Path
    balancer: str
    replicas: list[Replica] = field(default_factory=list)

    @property
    def admin_key(self) -> str:
        return (self.home / "admin-key.txt").read_text().strip()

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def logs(self) -> str:
        return "\n".join(f"--- replica :{r.port} ---\n{r.tail()}" for r in self.replicas)


def _start_replica(home: Path, env: dict[str, str]) -> Replica:
    port = free_port()
    log = home.parent / f"replica-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve", "--port", str(port)],
        env={**env, "HEARTH_PORT": str(port)},
        cwd=home.parent,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return Replica(port, process, log)


def _ready(replica: Replica) -> bool:
    if not replica.alive():
        raise RuntimeError(f"replica :{replica.port} exited:\n{replica.tail()}")
    try:
        return httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def nginx_config(folder: Path, listen: int, upstreams: list[int]) -> Path:
    """A foreground nginx balancing round-robin over `upstreams`, streaming responses through unbuffered,
    naming the replica that answered in X-Hearth-Upstream; every path it writes is under `folder`."""
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in upstreams)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in kinds)
    config = folder / "nginx.conf"
    config.write_text(
        f"""daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    upstream hearth {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{listen};
        client_max_body_size 100m;
        location / {{
            proxy_pass http://hearth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 120s;
            add_header X-Hearth-Upstream $upstream_addr always;
        }}
    }}
}}
"""
    )
    return config


@contextmanager
def cluster(tmp_path: Path, *, replicas: int = 3, **settings: str) -> Iterator[Cluster]:
    """`replicas` servers sharing one home (the LanceDB vector store and uploads live there) and the services
    named in `settings` (HEARTH_* names without the prefix, e.g. database_url=...), all started at once (they
    race for the migrations and the first admin, as a rollout does), behind nginx."""
    home = tmp_path / "home"
    home.mkdir()
    variables = {f"HEARTH_{name.upper()}": value for name, value in settings.items()}
    env = clean_env(home, HEARTH_VOICE_WARMUP="false", **variables)
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    with ExitStack() as stack:
        started = [_start_replica(home, env) for _ in range(replicas)]
        for replica in started:
            stack.callback(_stop, replica)
        listen = free_port()
        config = nginx_config(nginx_dir, listen, [r.port for r in started])
        nginx = subprocess.Popen(
            [NGINX, "-p", str(nginx_dir), "-c", str(config), "-e", str(nginx_dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=(nginx_dir / "stderr.log").open("w"),
        )
        stack.callback(_stop_nginx, nginx)
        result = Cluster(home, f"http://127.0.0.1:{listen}", started)
        for replica in started:
            wait_until(lambda r=replica: _ready(r), 180, what=f"replica :{replica.port} ready")
        if nginx.poll() is not None:
            raise RuntimeError((nginx_dir / "stderr.log").read_text() + (nginx_dir / "error.log").read_text())
        try:
            yield result
        except BaseException:
            print(result.logs())  # shown by pytest for a failing test
            raise


def _stop(replica: Replica) -> None:
    if replica.alive():
        replica.process.send_signal(signal.SIGCONT)  # a test may have paused it
        replica.process.send_signal(signal.SIGINT)  # Ctrl-C: no drain delay
        try:
            replica.process.wait(30)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(10)


def _stop_nginx(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGQUIT)  # graceful
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
