"""The deployment configuration, served for real: `hearth serve` started with the GPU overlay's hearth.yaml
and the pod's environment (paths moved into a temp folder, the Service's name resolved to a loopback
stand-in for vLLM, the Secret's value filled in). The probe routes answer, the image's and the compose
file's health-check commands succeed against it, and `chat` is answered by "vLLM" under the name vLLM
serves, with the key vLLM checks. (No container runtime or cluster runs here; this is the part that can.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.deploy_helpers import DEPLOY, container, env_of, hearth_config, one, overlay
from tests.serve_helpers import hearth_serve


class FakeVllm(ThreadingHTTPServer):
    """vLLM's OpenAI server as Hearth sees it: /v1/chat/completions, refused (401) without the API key it
    was started with, and a 404 for a model name it does not serve."""

    def __init__(self, api_key: str, served_model: str) -> None:
        self.api_key, self.served_model = api_key, served_model
        self.seen: list[tuple[str, str | None, str | None]] = []
        super().__init__(("127.0.0.1", 0), _VllmHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _VllmHandler(BaseHTTPRequestHandler):
    server: FakeVllm

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, self.headers.get("Authorization"), body.get("model")))
        if self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            return self._send(401, {"error": "Unauthorized"})
        if self.path != "/v1/chat/completions" or body.get("model") != self.server.served_model:
            return self._send(404, {"error": {"message": "model not found", "type": "NotFoundError"}})
        message = {"role": "assistant", "content": "served by the GPU tier"}
        return self._send(
            200,
            {
                "id": "cmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": self.server.served_model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def fake_vllm() -> Iterator[FakeVllm]:
    server = container(one(overlay("gpu-inference"), "Deployment", "vllm"), "vllm")
    served = dict(a.removeprefix("--").split("=", 1) for a in server["args"])["served-model-name"]
    fake = FakeVllm(api_key="k-" + uuid.uuid4().hex, served_model=served)
    try:
        yield fake
    finally:
        fake.shutdown()
        fake.server_close()


def health_checks(port: int) -> list[list[str]]:
    """The Dockerfile's HEALTHCHECK and the compose file's hearth check, as the commands they run here (the
    image's `python` is this interpreter; compose's fixed port 8080 is the test server's)."""
    from dockerfile_parse import DockerfileParser

    (docker,) = [
        i["value"]
        for i in DockerfileParser(path=str(DEPLOY / "docker" / "Dockerfile")).structure
        if i["instruction"] == "HEALTHCHECK"
    ]
    image = json.loads(docker[docker.index("CMD") + 3 :].strip())
    spec = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    kind, *compose = spec["services"]["hearth"]["healthcheck"]["test"]
    assert kind == "CMD"
    compose = [arg.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for arg in compose]
    return [[sys.executable, *image[1:]], [sys.executable, *compose[1:]]]


def test_gpu_overlay_config_serves_chat_through_vllm(tmp_path: Path, fake_vllm: FakeVllm) -> None:
    objects = overlay("gpu-inference")
    configmap = hearth_config(objects)
    raw = yaml.safe_load(configmap["data"]["hearth.yaml"])
    service = urlsplit(raw["backends"]["vllm"]["base_url"])
    raw["backends"]["vllm"]["base_url"] = service._replace(netloc=fake_vllm.address).geturl()  # cluster DNS
    catalogue = tmp_path / "hearth.yaml"
    catalogue.write_text(yaml.safe_dump(raw))

    hearth = container(one(objects, "Deployment", "hearth"), "hearth")
    env = {k: v for k, v in env_of(hearth).items() if isinstance(v, str)}
    for name in ("HEARTH_HOME", "HEARTH_HOST", "HEARTH_PORT"):
        env.pop(name)  # the test's own home and port
    env.update(HEARTH_CONFIG_FILE=str(catalogue), VLLM_API_KEY=fake_vllm.api_key)
    home = tmp_path / "home"
    home.mkdir()
    with hearth_serve(home, **env) as url:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert httpx.get(url + hearth[probe]["httpGet"]["path"], timeout=10).status_code == 200, probe
        port = urlsplit(url).port
        for command in health_checks(port):
            check = subprocess.run(
                command, env={**os.environ, "HEARTH_PORT": str(port)}, capture_output=True, timeout=30
            )
            assert check.returncode == 0, (command, check.stderr)
        key = (home / "admin-key.txt").read_text().strip()
        r = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "served by the GPU tier"
    assert fake_vllm.seen == [("/v1/chat/completions", f"Bearer {fake_vllm.api_key}", fake_vllm.served_model)]
    # …and once the server is gone, the same health checks fail (they do check something).
    for command in health_checks(port):
        check = subprocess.run(
            command, env={**os.environ, "HEARTH_PORT": str(port)}, capture_output=True, timeout=30
        )
        assert check.returncode != 0, command
