"""A real `hearth serve` process on a free port with its own HEARTH_HOME, and the `hearth` command as a user
runs it (a new process, an environment without the caller's HEARTH_* variables)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.harness import free_port
from tests.helpers import wait_until


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any HEARTH_* setting, with HEARTH_HOME=home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(HEARTH_HOME=str(home), OMP_WAIT_POLICY="PASSIVE", **extra)
    # The package under test, also when it is not installed in this interpreter.
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def hearth(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `hearth ARGS` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "hearth", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def hearth_serve(home: Path, *, within: float = 120, **extra_env: str) -> Iterator[str]:
    """`hearth serve` on a free port, its data in `home`; yields its URL; stops it (SIGINT, as Ctrl-C)."""
    port = free_port()
    env = clean_env(home, HEARTH_PORT=str(port), HEARTH_VOICE_WARMUP="false", **extra_env)
    log = (home.parent / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve"], env=env, cwd=home.parent, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"hearth serve exited: {(home.parent / log.name).read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, within, what="hearth serve ready")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
