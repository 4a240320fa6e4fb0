"""Kill -9 a `hearth serve` in the middle of a router run (on SQLite and on PostgreSQL, so both of Hearth's
savers are under test, with the default durability: checkpoints written while the next node runs), restart
it: the run is `interrupted`, its checkpoint says what runs next, and resuming finishes it without running
the steps already taken again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import yaml

from tests.agents_helpers import Script
from tests.fake_openai import FakeOpenAI
from tests.harness import free_port
from tests.helpers import wait_until

ANSWER = "Paris is the capital of France."


def _serve(home: Path, config: Path, database_url: str, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(
        HEARTH_HOME=str(home),
        HEARTH_CONFIG_FILE=str(config),
        HEARTH_DATABASE_URL=database_url,
        HEARTH_PORT=str(port),
        HEARTH_VOICE_WARMUP="false",
        HEARTH_LOG_LEVEL="WARNING",
        HEARTH_AGENTS_HEARTBEAT_SECONDS="0.5",
        OMP_WAIT_POLICY="PASSIVE",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH")) if p
    )
    log = (home.parent / f"serve-{port}-{time.monotonic_ns()}.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "hearth", "serve"], env=env, stdout=log, stderr=log)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 180, what="server readiness", every=0.1)
    except BaseException:
        process.kill()
        print(Path(log.name).read_text()[-3000:])
        raise
    return process


def _stored_next(base: str, run_id: str | None, headers: dict[str, str]) -> list[str] | None:
    """What the run's last stored checkpoint says runs next."""
    got = httpx.get(f"{base}/api/agents/router/{run_id}/checkpoints", headers=headers, timeout=10)
    return got.json()[-1]["next"] if got.status_code == 200 and got.json() else None


def test_kill_9_mid_graph_then_resume(tmp_path: Path, database_url: str) -> None:
    upstream = FakeOpenAI().start()
    judging = threading.Event()
    script = Script()

    def judge(body: dict) -> dict:
        judging.set()
        return {"text": '{"score": 1}', "delay": 120}  # the server dies before this answer comes

    script.answers = {"classify": "factual", "answer": ANSWER, "judge": judge}
    upstream.behaviour.script = script
    config = tmp_path / "hearth.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "include_defaults": False,
                "backends": {"up0": {"type": "openai", "base_url": upstream.url}},
                "aliases": {
                    "chat": {"kind": "chat", "deployments": [{"backend": "up0", "model": "m0"}]},
                    "judge": {"kind": "chat", "deployments": [{"backend": "up0", "model": "mj"}]},
                },
            }
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(home, config, database_url, port)
    try:
        headers = {"Authorization": f"Bearer {(home / 'admin-key.txt').read_text().strip()}"}
        run_id = None
        seen = []
        with httpx.stream(
            "POST",
            f"{base}/api/agents/router",
            json={"query": "What is the capital of France?", "stream": True},
            headers=headers,
            timeout=60,
        ) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = orjson.loads(line[6:])
                run_id = run_id or event.get("run_id")
                if event["type"] == "node":
                    seen.append(event["node"])
                if event["type"] == "node" and event["node"] == "generate":
                    assert judging.wait(30), "the judge was never asked"
                    # Checkpoints are written while the next node runs (durability "async"): the kill comes
                    # once generate's is stored, as it is within milliseconds while a model thinks.
                    wait_until(
                        lambda rid=run_id: _stored_next(base, rid, headers) == ["judge"],
                        30,
                        what="generate's checkpoint stored",
                        every=0.05,
                    )
                    server.send_signal(signal.SIGKILL)  # mid-graph: the judge has not answered
                    server.wait(10)
                    break
        assert seen == ["classify", "route", "generate"] and run_id

        server = _serve(home, config, database_url, port)

        def interrupted() -> dict | None:
            got = httpx.get(f"{base}/api/agents/router/{run_id}", headers=headers).json()
            return got if got["status"] == "interrupted" else None

        # The dead process stopped beating: within three beats its run is marked interrupted.
        run = wait_until(interrupted, 30, what="the killed run marked interrupted", every=0.2)
        assert run["next"] == ["judge"], run
        assert [s["node"] for s in run["steps"]] == ["classify", "route", "generate"]

        script.answers["judge"] = '{"score": 77}'
        resumed = httpx.post(f"{base}/api/agents/router/{run_id}/resume", headers=headers, timeout=60)
        assert resumed.status_code == 200, resumed.text
        body = resumed.json()
        assert body["status"] == "completed" and body["result"]["answer"] == ANSWER
        assert body["result"]["score"] == 77 and body["result"]["route"] == "direct"
        # Classify and generate ran once, before the crash; only the judge ran again.
        assert script.count("classify") == 1 and script.count("answer") == 1 and script.count("judge") == 2
        assert [s["node"] for s in body["steps"]] == ["classify", "route", "generate", "judge", "finish"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        upstream.stop()
