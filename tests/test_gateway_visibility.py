"""Which model answered, visibly: fallback headers on every /v1 route (streamed or not), the real model and
health in GET /v1/models and `hearth models`, degraded aliases in /readyz, the CLI's fallback notice, and
config mistakes stopping `hearth serve` with one readable line. Real Hearth servers in front of real fake
upstreams on loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.harness import free_port, run_hearth
from tests.helpers import wait_until

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def _config(primary: str, fallback: str) -> dict:
    """chat, vectors and scores: each an alias whose primary is `primary` and fallback `fallback`."""
    backends = {
        "up0": {"type": "openai", "base_url": primary},
        "up1": {"type": "openai", "base_url": fallback},
    }
    # One failure cools the primary down for a minute; no retries, so a fallback is one request away.
    health = {"max_retries": 0, "failures_before_cooldown": 1, "cooldown": 60}

    def alias(kind: str, model: str) -> dict:
        # Each alias its own upstream model name: a (backend, model) pair is one deployment, health shared.
        return {
            "kind": kind,
            "deployments": [
                {"backend": "up0", "model": f"{model}0", "priority": 0, **health},
                {"backend": "up1", "model": f"{model}1", "priority": 1, **health},
            ],
        }

    return {
        "include_defaults": False,
        "backends": backends,
        "aliases": {
            "chat": alias("chat", "m"),
            "vectors": alias("embedding", "e"),
            "scores": alias("rerank", "r"),
        },
    }


def test_primary_answers_with_headers_that_say_so(tmp_path, upstreams):
    a, b = upstreams
    with run_hearth(tmp_path, _config(a.url, b.url)) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 200
        assert r.headers["x-hearth-deployment"] == "up0/m0"
        assert r.headers["x-hearth-fallback"] == "false"
        ready = httpx.get(f"{hearth.url}/readyz").json()
        assert ready["status"] == "ready" and "aliases" not in ready


def test_fallback_is_visible_in_headers_models_readyz_and_cli(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = "error500"
    with run_hearth(tmp_path, _config(a.url, b.url)) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert (
            r.status_code == 200 and r.json()["model"] == CHAT["model"]
        )  # the alias asked for; who answered: the headers
        assert r.headers["x-hearth-deployment"] == "up1/m1"
        assert r.headers["x-hearth-fallback"] == "true"
        assert "up0/m0" in r.headers["x-hearth-fallback-reason"]  # the failure that caused it

        # Streamed: headers go out before the first byte, naming the deployment that produced it (the
        # primary is cooling down now, so it is skipped without a try: the reason says so).
        body = {**CHAT, "stream": True}
        with httpx.stream("POST", f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers()) as s:
            assert s.headers["x-hearth-deployment"] == "up1/m1"
            assert s.headers["x-hearth-fallback"] == "true"
            assert "cooling down" in s.headers["x-hearth-fallback-reason"]
            assert [line for line in s.iter_lines() if line][-1] == "data: [DONE]"

        # Embeddings and rerank carry the same headers.
        e = httpx.post(
            f"{hearth.v1}/embeddings", json={"model": "vectors", "input": ["x"]}, headers=hearth.headers()
        )
        assert e.status_code == 200, e.text
        assert (e.headers["x-hearth-deployment"], e.headers["x-hearth-fallback"]) == ("up1/e1", "true")
        k = httpx.post(
            f"{hearth.v1}/rerank",
            json={"model": "scores", "query": "q", "documents": ["q a", "b"]},
            headers=hearth.headers(),
        )
        assert k.status_code == 200, k.text
        assert (k.headers["x-hearth-deployment"], k.headers["x-hearth-fallback"]) == ("up1/r1", "true")

        # /v1/models: the deployment serving now, and the primary's health with its last error.
        card = httpx.get(f"{hearth.v1}/models/chat", headers=hearth.headers()).json()
        assert card["serving"] == "up1/m1" and card["status"] == "degraded"
        primary, fallback = card["deployment_details"]
        assert primary["health"]["status"] == "cooling_down"
        assert "500" in primary["health"]["last_error"] and primary["health"]["cooldown_until"]
        assert primary["model"] == "m0" and primary["url"] == a.url and primary["engine"].startswith("OpenAI")
        assert fallback["health"]["status"] == "ok"

        # /readyz: still ready (an alias can answer), and says which aliases are degraded and why.
        ready = httpx.get(f"{hearth.url}/readyz")
        assert ready.status_code == 200
        detail = ready.json()
        assert detail["status"] == "degraded"
        assert detail["aliases"]["chat"]["serving"] == "up1/m1"
        assert "up0/m0 cooling down" in detail["aliases"]["chat"]["detail"]

        # The CLI: `hearth chat` prints a one-line notice; `hearth models` shows health and who serves.
        args = ["--url", hearth.url, "--api-key", hearth.admin_key]
        result = CliRunner().invoke(cli, ["chat", "hello", *args])
        assert result.exit_code == 0, result.output
        assert "note: a fallback answered (up1/m1)" in result.output
        listing = CliRunner().invoke(cli, ["models", *args], env={"COLUMNS": "250"})
        assert listing.exit_code == 0, listing.output
        assert "cooling down" in listing.output and "(fallback)" in listing.output


def test_every_deployment_cooling_down_makes_the_alias_down(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = b.behaviour.mode = "error500"
    with run_hearth(tmp_path, _config(a.url, b.url)) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 503
        detail = httpx.get(f"{hearth.url}/readyz").json()
        assert detail["aliases"]["chat"]["status"] == "down"
        assert detail["status"] == "degraded"  # the other aliases can still answer


def _serve(tmp_path, config_text: str, port: int) -> subprocess.Popen:
    config = tmp_path / "hearth.yaml"
    config.write_text(config_text)
    env = {
        **os.environ,
        "HEARTH_CONFIG_FILE": str(config),
        "HEARTH_DATA_DIR": str(tmp_path / "data"),
        "HEARTH_PORT": str(port),
        "HEARTH_VOICE_WARMUP": "false",
    }
    env.pop("HEARTH_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a misspelt key
            "aliases:\n  chat:\n    kind: chat\n    deploymets: [{backend: local-llm}]\n",
            ["aliases.chat.deploymets: unknown key", "did you mean 'deployments'"],
        ),
        (  # a wrong type
            "backends:\n  local-llm:\n    type: llama_cpp\n    n_ctx: lots\n",
            ["backends.local-llm.n_ctx:", "'lots'", "fix:"],
        ),
        (  # an unknown backend type
            "backends:\n  remote:\n    type: opneai\n    base_url: http://x/v1\n",
            ["backends.remote.type: 'opneai' is not allowed", "'openai'"],
        ),
        (  # a deployment naming a backend that does not exist
            "aliases:\n  chat:\n    kind: chat\n    deployments: [{backend: local-lm}]\n",
            ["aliases.chat.deployments.0.backend: unknown backend 'local-lm'", "did you mean 'local-llm'"],
        ),
        (  # broken YAML
            "aliases:\n  chat: [\n",
            ["not valid YAML", "line "],
        ),
    ],
)
def test_config_mistake_stops_serve_with_one_readable_line(tmp_path, text, expected):
    proc = _serve(tmp_path, text, free_port())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, no traceback, no JSON log
    assert lines[0].startswith("hearth: configuration error: ")
    assert str(tmp_path / "hearth.yaml") in lines[0]
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in out + err


def test_serve_logs_the_config_file_it_loaded(tmp_path, upstreams):
    a, _ = upstreams
    config = {
        "include_defaults": False,
        "backends": {"up": {"type": "openai", "base_url": a.url}},
        "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "up", "model": "m"}]}},
    }
    port = free_port()
    proc = _serve(tmp_path, yaml.safe_dump(config), port)
    try:

        def ready() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 60, what="hearth serve ready")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    entries = [orjson.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    loaded = [e for e in entries if e.get("msg") in ("model catalogue loaded", "hearth ready")]
    assert loaded and all(e["config_file"] == str((tmp_path / "hearth.yaml").resolve()) for e in loaded)


def test_cli_notice_is_quiet_when_the_primary_answers(tmp_path, upstreams):
    a, b = upstreams
    with run_hearth(tmp_path, _config(a.url, b.url)) as hearth:
        result = CliRunner().invoke(
            cli, ["chat", "hello", "--url", hearth.url, "--api-key", hearth.admin_key]
        )
        assert result.exit_code == 0, result.output
        assert "fallback" not in result.output


def test_a_bad_environment_variable_stops_serve_with_one_line(tmp_path):
    env = {**os.environ, "HEARTH_PORT": "eighty", "HEARTH_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "hearth", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("hearth: configuration error: environment variable HEARTH_PORT:")
    assert "'eighty'" in line and "integer" in line
    assert not (tmp_path / "data").exists()  # nothing was created before the check
