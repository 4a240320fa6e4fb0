"""The `hearth` CLI against a running server, Prometheus metrics, JSON logs and request ids."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from hearth.platform.logging import JsonFormatter, request_id_var
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):
    upstream = FakeOpenAI().start()
    upstream.behaviour.stream_chunks = 3
    with run_hearth(tmp_path_factory.mktemp("cli"), remote_config((upstream.url, {}))) as server:
        yield server
    upstream.stop()


def test_chat_command_streams_the_reply(hearth):
    result = CliRunner().invoke(cli, ["chat", "hello", "--url", hearth.url, "--api-key", hearth.admin_key])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "tok0 tok1 tok2"


def test_chat_command_reports_errors_cleanly(hearth):
    result = CliRunner().invoke(
        cli, ["chat", "hi", "-m", "nope", "--url", hearth.url, "--api-key", hearth.admin_key]
    )
    assert result.exit_code == 1
    assert "404" in result.output and "nope" in result.output
    result = CliRunner().invoke(cli, ["chat", "hi", "--url", "http://127.0.0.1:1", "--api-key", "hk-x"])
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_models_command_lists_aliases(hearth):
    result = CliRunner().invoke(cli, ["models", "--url", hearth.url, "--api-key", hearth.admin_key])
    assert result.exit_code == 0, result.output
    assert "chat" in result.output and "up0/m0" in result.output


def test_metrics_count_requests_tokens_and_ttft(hearth):
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers()).status_code == 200
    with httpx.stream(
        "POST", f"{hearth.v1}/chat/completions", json={**body, "stream": True}, headers=hearth.headers()
    ) as r:
        r.read()
    httpx.post(f"{hearth.v1}/chat/completions", json={**body, "model": "ghost"}, headers=hearth.headers())
    text = httpx.get(f"{hearth.url}/metrics").text
    assert 'hearth_gateway_requests_total{alias="chat",deployment="up0/m0",status="200"}' in text
    assert 'hearth_gateway_time_to_first_token_seconds_count{alias="chat",deployment="up0/m0"}' in text
    assert 'hearth_gateway_tokens_total{alias="chat",deployment="up0/m0",direction="out"}' in text
    assert 'hearth_gateway_request_seconds_bucket{alias="chat",deployment="up0/m0",le="0.005"}' in text
    assert 'hearth_gateway_queue_depth{deployment="up0/m0"} 0.0' in text


def test_request_id_is_echoed_or_generated(hearth):
    r = httpx.get(f"{hearth.url}/healthz", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    assert len(httpx.get(f"{hearth.url}/healthz").headers["x-request-id"]) == 16


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("hearth.test", logging.INFO, __file__, 1, "served %s", ("x",), None)
    record.status = 200
    token = request_id_var.set("abc123")
    try:
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["msg"] == "served x" and line["request_id"] == "abc123" and line["status"] == 200
    assert line["level"] == "info" and line["logger"] == "hearth.test"


def test_access_log_is_one_json_line_per_request(hearth, capfd):
    err: list[str] = []

    def logged(request_id: str) -> bool:
        err.extend(capfd.readouterr().err.splitlines())
        return any(request_id in line for line in err)

    httpx.get(f"{hearth.url}/healthz", headers={"X-Request-ID": "log-check-42"})
    # A later request: lines are written in order, so once its line is out every line of the first is too.
    httpx.get(f"{hearth.url}/healthz", headers={"X-Request-ID": "log-check-43"})
    wait_until(lambda: logged("log-check-43"), 2, what="access lines flushed")  # batches go out within 0.2 s
    lines = [orjson.loads(line) for line in err if "log-check-42" in line]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["logger"] == "hearth.access" and entry["path"] == "/healthz" and entry["status"] == 200
    assert entry["method"] == "GET" and entry["ms"] >= 0 and entry["ts"].endswith("+00:00")
