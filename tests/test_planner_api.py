"""The planner over HTTP and the CLI, on a real server: knowledge base, predict, plan (and what-if),
manifests, errors in the API's shape, the bench feedback loop, and deploy up to the Kubernetes edge.

No Kubernetes API server can run here: deploy is tested against a loopback HTTP server that records the
requests the official `kubernetes` client sends (server-side apply PATCHes, status GETs) and answers as an API
server with a Ready InferenceService would; the InferenceService's URL is a fake OpenAI upstream, so the test
then sends a chat completion through Hearth's new alias and sees it arrive."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.fake_openai import FakeOpenAI
from tests.harness import run_hearth

EMPTY_CATALOG = {"include_defaults": False, "backends": {}, "aliases": {}}
QWEN_7B = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture(scope="module")
def hearth(tmp_path_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    with run_hearth(tmp_path_factory.mktemp("planner"), EMPTY_CATALOG) as running:
        yield running


@pytest.fixture(scope="module")
def user_key(hearth) -> str:  # type: ignore[no-untyped-def]
    h = hearth.headers()
    assert (
        httpx.post(f"{hearth.url}/api/admin/users", json={"username": "planner-user"}, headers=h).status_code
        == 201
    )
    r = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "planner-user"}, headers=h)
    return r.json()["key"]


def post(hearth, path: str, body: Any, key: str | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{hearth.url}/api/planner{path}", json=body, headers=hearth.headers(key), timeout=120)


def get(hearth, path: str, key: str | None = None, **params: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.get(
        f"{hearth.url}/api/planner{path}", params=params, headers=hearth.headers(key), timeout=120
    )


def test_knowledge_base_is_served_with_sources(hearth, user_key) -> None:  # type: ignore[no-untyped-def]
    models = get(hearth, "/models", user_key).json()
    families = {m["family"] for m in models}
    assert {"llama", "mistral", "qwen", "granite"} <= families
    llama = next(m for m in models if m["id"] == "meta-llama/Llama-3.1-8B-Instruct")
    assert (llama["layers"], llama["kv_heads"], llama["head_dim"]) == (32, 8, 128) and llama["quality_source"]
    gpus = {g["name"]: g for g in get(hearth, "/gpus", user_key).json()}
    assert {"H100-80GB", "H200-141GB", "A100-80GB", "L40S-48GB", "L4-24GB"} <= set(gpus)
    assert gpus["L40S-48GB"]["product_label"] == "NVIDIA-L40S" and gpus["L40S-48GB"]["price_source"]
    rows = get(hearth, "/benchmarks", user_key, gpu="H200-141GB").json()
    assert len(rows) == 20 and all(r["kind"] == "measured" and "TensorRT-LLM" in r["source"] for r in rows)
    assert httpx.get(f"{hearth.url}/api/planner/models").status_code == 401


def test_predict_answers_and_errors(hearth, user_key) -> None:  # type: ignore[no-untyped-def]
    base = {
        "model_id": "meta-llama/Llama-3.3-70B-Instruct",
        "quantization": "fp8",
        "gpu": "H100-80GB",
        "gpu_count": 2,
        "prompt_tokens": 1000,
        "output_tokens": 1000,
    }
    r = post(hearth, "/predict", base, user_key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "measured" and body["output_tokens_per_s"] == 4205  # the TensorRT-LLM table
    r = post(hearth, "/predict", {**base, "gpu_count": 4, "concurrency": 32}, user_key)
    body = r.json()
    assert body["source"] == "model" and body["confidence"] in ("low", "medium")
    for key in (
        "ttft_ms_p50",
        "ttft_ms_p95",
        "itl_ms_p50",
        "itl_ms_p95",
        "e2e_ms_p50",
        "e2e_ms_p95",
        "output_tokens_per_s",
        "requests_per_s",
    ):
        assert body[key] > 0
    assert body["ttft_ms_p95"] >= body["ttft_ms_p50"] and body["itl_ms_p95"] >= body["itl_ms_p50"]
    assert body["expected_error_pct"] is not None
    # The error comes from a named hold-out, per metric; the headline is the worst of the three.
    assert body["error_basis"] in ("leave_one_row_out", "leave_one_configuration_out")
    assert set(body["expected_error_by_metric"]) == {"ttft_ms_p50", "itl_ms_p50", "output_tokens_per_s"}
    assert body["expected_error_pct"] == max(body["expected_error_by_metric"].values())
    # Provenance: H100 rows calibrated it, from the NIM online sweep and the TensorRT-LLM offline table.
    assert any("NVIDIA NIM" in s for s in body["rows_used"])
    assert any("TensorRT-LLM performance overview" in s for s in body["rows_used"])

    errors = [
        ({"model_id": "acme/unknown"}, 404, "unknown_model"),
        ({"gpu": "RTX-4090"}, 404, "unknown_gpu"),
        ({"quantization": "bf16", "gpu": "L4-24GB", "gpu_count": 1}, 422, "does_not_fit"),
        ({"prompt_tokens": 0}, 422, "invalid_value"),
        ({"concurrency": 4, "request_rate": 2}, 400, None),
        ({"gpu_count": 4, "request_rate": 50_000}, 422, "over_capacity"),
    ]
    for update, status, code in errors:
        r = post(hearth, "/predict", {**base, **update}, user_key)
        assert r.status_code == status, (update, r.text)
        error = r.json()["error"]
        assert error["message"] and (code is None or error["code"] == code)


def test_fp16_is_the_16_bit_class_of_a_bf16_checkpoint(hearth, user_key) -> None:  # type: ignore[no-untyped-def]
    """Users write fp16 and mean an unquantized deployment: planned as the catalog's bf16, saying so."""
    base = {
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "gpu": "H100-80GB",
        "gpu_count": 1,
        "prompt_tokens": 512,
        "output_tokens": 256,
        "concurrency": 16,
    }
    as_bf16 = post(hearth, "/predict", {**base, "quantization": "bf16"}, user_key)
    as_fp16 = post(hearth, "/predict", {**base, "quantization": "fp16"}, user_key)
    assert as_bf16.status_code == 200 and as_fp16.status_code == 200, as_fp16.text
    fp16 = as_fp16.json()
    assert fp16["quantization"] == "bf16"
    assert any("fp16 and bf16 are one 16-bit class" in note for note in fp16["notes"])
    assert fp16["itl_ms_p50"] == as_bf16.json()["itl_ms_p50"]
    # A real mismatch is still refused with the choices.
    bad = post(hearth, "/predict", {**base, "quantization": "int8"}, user_key)
    assert bad.status_code == 400 and "choose one of" in bad.json()["error"]["message"]


def test_plan_from_text_and_what_if(hearth, user_key) -> None:  # type: ignore[no-untyped-def]
    r = post(hearth, "/intent", {"text": "a chatbot for 5,000 employees", "use_model": False}, user_key)
    spec = r.json()["spec"]
    r = post(hearth, "/plan", {"spec": spec, "limit": 5}, user_key)
    assert r.status_code == 200, r.text
    first = r.json()
    assert len(first["balanced"]) == 5 and first["pareto"] and first["search_ms"] > 0
    assert all(o["ttft_ms_p95"] <= 500 and o["itl_ms_p95"] <= 40 for o in first["balanced"])
    # What-if: 40× the users on A100s only: more GPUs, more money.
    spec["workload"]["users"] = 200_000
    spec["preferred_gpus"] = ["A100-80GB"]
    r = post(hearth, "/plan", {"spec": spec, "limit": 5}, user_key)
    bigger = r.json()
    assert {o["gpu"] for o in bigger["balanced"]} == {"A100-80GB"}
    assert bigger["expected_qps"] == pytest.approx(200_000 * 0.1 * 20 / 3600 * 2, abs=1e-3)
    assert bigger["cheapest"][0]["total_gpus"] > first["cheapest"][0]["total_gpus"]

    bad = json.loads(json.dumps(spec))
    bad["workload"]["users"] = 0
    r = post(hearth, "/plan", {"spec": bad}, user_key)
    assert r.status_code == 422 and r.json()["error"]["param"] == "spec.workload.users"
    bad = json.loads(json.dumps(spec))
    bad["slo"]["itl_ms_p95"] = 0.5
    r = post(hearth, "/plan", {"spec": bad}, user_key)
    assert r.status_code == 422 and r.json()["error"]["code"] == "slo_unattainable"
    assert "ITL p95" in r.json()["error"]["message"]
    r = post(hearth, "/plan", {"spec": spec, "models": ["acme/unknown"]}, user_key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_model"
    huge = {**spec, "qps": 1e308}  # issue 20, row 4: was a 500 (infinity to int)
    r = post(hearth, "/plan", {"spec": huge}, user_key)
    assert r.status_code == 422 and r.json()["error"]["param"] == "spec.qps"


def test_manifests_endpoint(hearth, user_key) -> None:  # type: ignore[no-untyped-def]
    spec = post(
        hearth, "/intent", {"text": "code completion for 300 developers", "use_model": False}, user_key
    ).json()["spec"]
    option = post(hearth, "/plan", {"spec": spec, "limit": 1}, user_key).json()["balanced"][0]
    r = post(hearth, "/manifests", {"option": option, "name": "code-assist", "namespace": "dev"}, user_key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["kind"] for m in body["manifests"]] == ["InferenceService", "HorizontalPodAutoscaler"]
    assert "--tensor-parallel-size" in body["yaml"] and body["name"] == "code-assist"
    r = post(hearth, "/manifests", {"option": {**option, "model_id": "acme/unknown"}}, user_key)
    assert r.status_code == 404
    r = post(hearth, "/manifests", {"option": option, "name": "Not A DNS Name"}, user_key)
    assert r.status_code == 422


def test_bench_rows_close_the_loop_over_http(hearth, user_key) -> None:  # type: ignore[no-untyped-def]
    point = {
        "model_id": QWEN_7B,
        "quantization": "bf16",
        "gpu": "L40S-48GB",
        "gpu_count": 1,
        "prompt_tokens": 700,
        "output_tokens": 300,
        "concurrency": 12,
    }
    before = post(hearth, "/predict", point, user_key).json()
    assert before["source"] == "model"
    row = {
        **point,
        "ttft_ms_p50": 95.0,
        "itl_ms_p50": 31.0,
        "e2e_ms_p50": 9400.0,
        "output_tokens_per_s": 380.0,
        "source": "hearth bench run api-test",
        "measured_on": "2026-11-21",
        "kind": "measured",
        "endpoint": "http://10.0.0.5:8000/v1",
        "hardware_label": "1x L40S",
    }
    assert post(hearth, "/benchmarks", [row], user_key).status_code == 403  # admins only
    bad = post(hearth, "/benchmarks", [row, {**row, "kind": "guessed"}])
    assert bad.status_code == 422
    too_big = post(hearth, "/benchmarks", [{**row, "prompt_tokens": 2**63}])  # issue 20, row 4: was a 500
    assert too_big.status_code == 422 and too_big.json()["error"]["param"] == "0.prompt_tokens"
    assert not [
        r for r in get(hearth, "/benchmarks", model_id=QWEN_7B, gpu="L40S-48GB").json()
    ]  # nothing stored
    assert post(hearth, "/benchmarks", [row]).json() == {"added": 1}
    after = post(hearth, "/predict", point, user_key).json()
    assert after["source"] == "measured" and after["itl_ms_p50"] == 31.0
    near = post(hearth, "/predict", {**point, "concurrency": 16}, user_key).json()
    assert near["confidence"] == "medium" and "hearth bench run api-test" in near["rows_used"]
    calibration = get(hearth, "/calibration", user_key).json()
    assert "L40S-48GB" in calibration["per_gpu"]
    # The new source is judged like the published ones: held out whole, per metric.
    loso = calibration["held_out_error"]["leave_one_source_out"]
    assert "hearth bench run api-test" in loso["per_source"]
    # 802 published online rows with an ITL (the NIM page's 500→2000 row at concurrency 5 has none), and
    # this one.
    assert loso["overall"]["itl_ms_p50"]["rows"] == 803


class _FakeKubernetes(BaseHTTPRequestHandler):
    """Answers like an API server: apply PATCHes echo the object; status GETs report Ready at `url`."""

    requests: list[tuple[str, str, str | None, dict | None]] = []
    url = ""

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.requests.append(("PATCH", self.path, self.headers.get("content-type"), body))
        self._send(body)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, None, None))
        self._send({"status": {"url": self.url, "conditions": [{"type": "Ready", "status": "True"}]}})

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


def test_deploy_applies_polls_and_routes_through_the_gateway(tmp_path) -> None:  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    kube = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKubernetes)
    threading.Thread(target=kube.serve_forever, daemon=True).start()
    _FakeKubernetes.requests = []
    _FakeKubernetes.url = upstream.url.removesuffix("/v1")
    try:
        with run_hearth(
            tmp_path,
            EMPTY_CATALOG,
            planner_kube_api_url=f"http://127.0.0.1:{kube.server_port}",
            planner_poll_seconds=0.1,
        ) as hearth:
            spec = post(hearth, "/intent", {"text": "a chatbot for 500 users", "use_model": False}).json()[
                "spec"
            ]
            option = post(hearth, "/plan", {"spec": spec, "limit": 1}).json()["cheapest"][0]
            body = {"option": option, "name": "support-bot", "namespace": "llm", "alias": "support"}
            r = post(hearth, "/deploy", body)
            assert r.status_code == 200, r.text
            result = r.json()
            assert result["ready"] and result["registered"] and result["url"] == _FakeKubernetes.url
            assert result["applied"] == [
                "InferenceService/support-bot",
                "HorizontalPodAutoscaler/support-bot-predictor",
            ]
            patches = [q for q in _FakeKubernetes.requests if q[0] == "PATCH"]
            assert patches[0][1] == (
                "/apis/serving.kserve.io/v1beta1/namespaces/llm/inferenceservices/support-bot"
                "?fieldManager=hearth-planner&force=true"
            )
            assert patches[1][1].startswith("/apis/autoscaling/v2/namespaces/llm/horizontalpodautoscalers/")
            assert all(q[2] == "application/apply-patch+yaml" for q in patches)
            assert patches[0][3]["spec"]["predictor"]["nodeSelector"] == {
                "nvidia.com/gpu.product": option["gpu_product_label"]
            }
            assert any(
                q[0] == "GET" and q[1].endswith("/inferenceservices/support-bot/status")
                for q in _FakeKubernetes.requests
            )

            # Test prompts go through Hearth to the deployed endpoint.
            chat = httpx.post(
                f"{hearth.v1}/chat/completions",
                headers=hearth.headers(),
                timeout=30,
                json={"model": "support", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert chat.status_code == 200, chat.text
            assert chat.json()["choices"][0]["message"]["content"] == "hello from upstream"
            assert upstream.stats.bodies[-1]["model"] == "support-bot"
            models = httpx.get(f"{hearth.v1}/models", headers=hearth.headers()).json()["data"]
            assert "support" in [m["id"] for m in models]

            again = post(hearth, "/deploy", body)
            assert again.status_code == 409 and again.json()["error"]["code"] == "alias_exists"
    finally:
        kube.shutdown()
        upstream.stop()


def test_cli_plan_predict_and_calibrate(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HEARTH_DATABASE_URL", raising=False)
    out = tmp_path / "plan"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["plan", "a chatbot for 5,000 employees", "--no-model", "--out", str(out), "--top", "5"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "chatbot_conversational" in result.output and "TTFT ≤ 500 ms" in result.output
    files = sorted(p.name for p in out.iterdir())
    assert "cost-vs-latency.png" in files and "spec.json" in files and "plan.json" in files
    manifest = next(p for p in out.iterdir() if p.suffix == ".yaml")
    assert "kind: InferenceService" in manifest.read_text()
    assert (out / "cost-vs-latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # What-if on the saved spec.
    result = runner.invoke(
        cli,
        [
            "plan",
            "ignored",
            "--spec",
            str(out / "spec.json"),
            "--users",
            "50000",
            "--gpu",
            "L40S-48GB",
            "--out",
            str(tmp_path / "whatif"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    plan = json.loads((tmp_path / "whatif" / "plan.json").read_text())
    assert plan["spec"]["workload"]["users"] == 50000 and {o["gpu"] for o in plan["balanced"]} == {
        "L40S-48GB"
    }

    result = runner.invoke(
        cli,
        [
            "plan",
            "predict",
            "--model",
            QWEN_7B,
            "--gpu",
            "A100-80GB",
            "--prompt",
            "1024",
            "--output",
            "256",
            "--concurrency",
            "8",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["source"] == "model"
    result = runner.invoke(cli, ["plan", "predict", "--model", QWEN_7B, "--gpu", "TPU", "--concurrency", "8"])
    assert result.exit_code == 1 and "unknown GPU" in result.output
    result = runner.invoke(
        cli, ["plan", "a chatbot for 100 users", "--no-model", "--ttft", "1", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "no configuration meets the SLOs" in result.output
    result = runner.invoke(cli, ["plan", "calibrate"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "held out" in result.output and "H100-80GB" in result.output
    assert Path(tmp_path / "data" / "hearth.db").exists()
