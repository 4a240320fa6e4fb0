"""Workflows across real `hearth serve` processes: a server killed mid-step leaves no run "running" (the
next start sees the process is gone and resumes the step, which still has a retry), and two servers on one
PostgreSQL database run each step exactly once between them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import postgres_url
from tests.harness import free_port
from tests.helpers import wait_until
from tests.serve_helpers import clean_env, hearth_serve

ROOT = Path(__file__).resolve().parents[1]
FAST = {
    "PYTHONPATH": str(ROOT),  # tests.workflow_pipelines
    "HEARTH_WORKFLOWS_MODULES": "tests.workflow_pipelines",
    "HEARTH_WORKFLOWS_POLL_SECONDS": "0.05",
    "HEARTH_WORKFLOWS_HEARTBEAT_SECONDS": "0.2",
    "HEARTH_WORKFLOWS_STALE_SECONDS": "1.5",
    "HEARTH_CONFIG_FILE": "",
}


def _catalog(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "hearth.yaml").write_text("include_defaults: false\nbackends: {}\naliases: {}\n")
    return {k: v for k, v in FAST.items() if k != "HEARTH_CONFIG_FILE"}


def _call(url: str, key: str, method: str, path: str, **kwargs: Any) -> Any:
    r = httpx.request(
        method, f"{url}/api/workflows{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs
    )
    assert r.status_code < 300, r.text
    return r.json()


def test_a_killed_server_leaves_no_run_running(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    # Heartbeats would go stale only after 10 minutes: the restart must see at once that the process that
    # held the step is gone.
    env_extra = {**_catalog(home), "HEARTH_WORKFLOWS_STALE_SECONDS": "600"}
    marker = tmp_path / "attempts"
    port = free_port()
    env = clean_env(home, HEARTH_PORT=str(port), HEARTH_VOICE_WARMUP="false", **env_extra)
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve"], env=env, cwd=tmp_path, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url, first), 120, what="first server ready", every=0.2)
        key = (home / "admin-key.txt").read_text().strip()
        run = _call(
            url,
            key,
            "POST",
            "/runs",
            json={"pipeline": "slow", "params": {"seconds": 2.0, "marker": str(marker)}},
        )
        wait_until(lambda: marker.exists(), 30, what="the step to start")
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: no shutdown, the step is left "running" in the database
        first.wait(10)
        log.close()
    with hearth_serve(home, **env_extra) as url:
        done = wait_until(
            lambda: (
                (r := _call(url, key, "GET", f"/runs/{run['id']}"))["status"] in ("succeeded", "failed") and r
            ),
            60,
            what="the interrupted run to finish after the restart",
        )
        assert done["status"] == "succeeded", done
        [nap] = done["steps"]
        assert nap["attempt"] == 2  # resumed: the second attempt, counted against the step's one retry
        lines = [x["line"] for x in _call(url, key, "GET", f"/runs/{run['id']}/logs")["data"]]
        assert any(line.startswith("interrupted: worker ") for line in lines), lines
        assert marker.read_text().split("\n")[:2] == [f"{run['id']} 1", f"{run['id']} 2"]
        running = _call(url, key, "GET", "/runs", params={"status": "running"})["data"]
        assert running == []


def _ready(url: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise RuntimeError("hearth serve exited during start-up")
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_two_servers_on_postgres_run_each_step_once(tmp_path, postgres_schema) -> None:  # type: ignore[no-untyped-def]
    database = {"HEARTH_DATABASE_URL": postgres_url(postgres_schema), "HEARTH_WORKFLOWS_CONCURRENCY": "2"}
    tally = tmp_path / "tally"
    a_home, b_home = tmp_path / "a", tmp_path / "b"
    a_env, b_env = _catalog(a_home), _catalog(b_home)
    with (
        hearth_serve(a_home, **a_env, **database) as a_url,
        hearth_serve(b_home, **b_env, **database) as b_url,
    ):
        key = (a_home / "admin-key.txt").read_text().strip()
        runs = [
            _call(a_url, key, "POST", "/runs", json={"pipeline": "tally", "params": {"log": str(tally)}})[
                "id"
            ]
            for _ in range(8)
        ]
        for run_id in runs:
            wait_until(
                lambda run_id=run_id: _call(b_url, key, "GET", f"/runs/{run_id}")["status"] == "succeeded",
                60,
                what=f"run {run_id}",
            )
    executions = [line.split() for line in tally.read_text().splitlines()]
    counts = Counter((run_id, step) for run_id, step, _, _ in executions)
    assert set(counts) == {(r, s) for r in runs for s in ("t1", "t2", "t3")}
    assert set(counts.values()) == {1}  # every step ran once, none twice
    assert {attempt for _, _, attempt, _ in executions} == {"1"}
    assert len({pid for *_, pid in executions}) == 2, "both servers took steps"
    assert os.path.exists(tally)
