"""What a bench run leaves behind: JSON/CSV/PNG outputs, planner rows in the real database (SQLite and
PostgreSQL), GuideLLM imports (service, API and CLI), and clear errors for bad input."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import matplotlib.image
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from hearth.bench import service
from hearth.bench.guidellm import labels, rows_from_guidellm
from hearth.bench.outputs import console_table, write_outputs
from hearth.bench.prompts import Tokenizer, load_tokenizer
from hearth.bench.schemas import BenchConfig, BenchReport
from hearth.cli.main import app
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.planner.knowledge import list_benchmark_rows
from hearth.planner.schemas import BenchmarkRowOut
from hearth.planner.service import PlannerService
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from tests.fake_openai import Behaviour, FakeOpenAI
from tests.harness import free_port, remote_config, run_hearth


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer(None)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(Behaviour(stream_chunks=6, chunk_delay=0.002)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sweep_report(tokenizer: Tokenizer) -> BenchReport:
    import asyncio

    server = FakeOpenAI(Behaviour(stream_chunks=6, chunk_delay=0.002)).start()
    try:
        config = BenchConfig(
            target=server.url,
            model="fake-model",
            mode="sweep",
            sweep_size=3,
            max_requests=10,
            max_concurrency=4,
            prompt_tokens=32,
            output_tokens=6,
        )
        return asyncio.run(service.run_benchmark(config=config, tokenizer=tokenizer))
    finally:
        server.stop()


def guidellm_dist(values: list[float], weights: list[float] | None = None) -> dict:
    """A GuideLLM 0.8 StatusDistributionSummary (only what a reader needs), by GuideLLM's percentile rule."""
    from hearth.bench.metrics import distribution

    d = distribution(values, weights)
    percentiles = {"p001": d.min, "p50": d.p50, "p90": d.p90, "p95": d.p95, "p99": d.p99, "p999": d.max}
    summary = {"mean": d.mean, "median": d.p50, "count": d.count, "min": d.min, "max": d.max}
    return {"successful": {**summary, "percentiles": percentiles}, "errored": {"count": 0}, "incomplete": {}}


def guidellm_report() -> dict:
    """The shape guidellm 0.8.1 writes to benchmarks.json (config.spec.backend, config.strategy with type_,
    metrics.*.successful; TTFT/ITL in ms, request_latency in s), with known values."""
    benches = []
    for strategy, ttft, lat, rps in (
        (
            {"type_": "concurrent", "streams": 4, "max_concurrency": None},
            [40.0, 42.0, 45.0, 60.0],
            [2.9, 3.0, 3.1, 3.6],
            1.3,
        ),
        (
            {"type_": "constant", "rate": 2.5, "max_concurrency": None},
            [50.0, 55.0, 70.0, 90.0],
            [3.2, 3.4, 3.9, 5.2],
            2.49,
        ),
        ({"type_": "throughput", "max_concurrency": 64}, [], [], 0.0),  # all failed: skipped
    ):
        benches.append(
            {
                "type_": "generative_benchmark",
                "config": {"strategy": strategy, "backend": {}},
                "scheduler_state": {"start_time": 1795000000.0},
                "metrics": {
                    "time_to_first_token_ms": guidellm_dist(ttft),
                    "inter_token_latency_ms": guidellm_dist(
                        [10.0, 11.0, 12.0, 14.0][: len(ttft)], [255.0] * len(ttft)
                    ),
                    "request_latency": guidellm_dist(lat),
                    "requests_per_second": guidellm_dist([rps]),
                    "output_tokens_per_second": guidellm_dist([rps * 256]),
                    "request_concurrency": guidellm_dist([4.0]),
                    "prompt_token_count": guidellm_dist([512.0] * len(ttft)),
                    "output_token_count": guidellm_dist([256.0] * len(ttft)),
                },
            }
        )
    return {
        "metadata": {"version": 2, "guidellm_version": "0.8.1"},
        "config": {
            "spec": {"backend": {"kind": "openai_http", "target": "http://gpu-node:8000", "model": "m/x"}}
        },
        "benchmarks": benches,
    }


def bench_on(db: Database) -> service.BenchService:
    """The bench saving into a planner on `db` (its events wait in the outbox: no bus is started)."""
    return service.BenchService(sink=PlannerService(db=db, bus=EventBus(db), settings=Settings()))


async def stored_rows(db: Database) -> list[BenchmarkRowOut]:
    """The rows the planner holds from bench runs and imports (not its packaged seed rows)."""
    rows = await list_benchmark_rows(db=db)
    return [r for r in rows if r.source.startswith(("hearth bench run", "lab run", "api test", "GuideLLM"))]


# -- outputs ------------------------------------------------------------------------------------------------


def test_outputs_exist_and_parse(sweep_report: BenchReport, tmp_path: Path) -> None:
    json_path, csv_path, png_path = write_outputs(sweep_report, tmp_path / "out")
    again = BenchReport.model_validate_json(json_path.read_text())
    assert again == sweep_report
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["strategy"] for r in rows] == ["synchronous", "throughput", "constant"]
    assert all(float(r["ttft_ms_p95"]) >= float(r["ttft_ms_p50"]) > 0 for r in rows)
    assert [float(r["requests_per_s"]) for r in rows] == pytest.approx(
        [b.requests_per_s for b in sweep_report.benchmarks]
    )
    # Each load point keeps its requests' latencies, which the PNG draws as distributions.
    assert all(len(b.samples.e2e_ms) == b.successful for b in sweep_report.benchmarks)
    image = matplotlib.image.imread(png_path)
    assert image.shape[0] >= 600 and image.shape[1] >= 900
    assert image.std() > 0.05  # something is drawn
    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(console_table(sweep_report))
    text = console.export_text()
    assert "synchronous" in text and "throughput" in text and "constant@" in text


# -- rows for the planner -----------------------------------------------------------------------------------


async def test_a_run_is_saved_as_measured_rows(database: Database, sweep_report: BenchReport) -> None:
    row_labels = labels(
        model_id="test-org/bench-model",
        quantization="gguf-q4_1",
        hardware_label="2-core CPU, fake upstream",
    )
    rows = await bench_on(database).save_report(report=sweep_report, row_labels=row_labels)
    assert len(rows) == 3
    stored = sorted(await stored_rows(database), key=lambda r: r.requests_per_s or 0)
    assert len(stored) == 3
    sync = next(r for r in stored if r.concurrency == 1.0)
    measured = sweep_report.benchmarks[0]
    assert sync.ttft_ms_p50 == pytest.approx(measured.ttft_ms.p50)
    assert sync.e2e_ms_p95 == pytest.approx(measured.e2e_ms.p95)
    assert sync.itl_ms_p99 == pytest.approx(measured.itl_ms.p99)
    assert sync.requests_per_s == pytest.approx(measured.requests_per_s)
    for row in stored:
        assert row.kind == "measured" and row.model_id == "test-org/bench-model"
        assert row.source.startswith(f"hearth bench run {sweep_report.run_id}")
        assert (
            row.endpoint == sweep_report.config["target"]
            and row.hardware_label == "2-core CPU, fake upstream"
        )
        assert row.gpu == "cpu" and row.quantization == "gguf-q4_1" and row.prompt_tokens == 7
    constant = next(r for r in stored if r.request_rate is not None)
    assert constant.request_rate == pytest.approx(sweep_report.benchmarks[2].strategy.rate)


async def test_guidellm_report_import(database: Database) -> None:
    rows = await bench_on(database).import_report(
        report=guidellm_report(), row_labels=labels(gpu="H100-80GB"), source="lab run 7"
    )
    assert len(rows) == 2  # the all-failed throughput benchmark is not a measurement
    concurrent, constant = rows
    assert concurrent.model_id == "m/x" and concurrent.endpoint == "http://gpu-node:8000"
    assert concurrent.concurrency == 4 and concurrent.request_rate is None
    assert constant.request_rate == 2.5 and constant.concurrency is None
    assert concurrent.ttft_ms_p50 == 42.0 and concurrent.ttft_ms_p95 == 60.0
    assert concurrent.e2e_ms_p50 == pytest.approx(3000.0)  # GuideLLM's request_latency is in seconds
    assert concurrent.itl_ms_p50 == 11.0
    assert (concurrent.prompt_tokens, concurrent.output_tokens) == (512, 256)
    assert concurrent.requests_per_s == 1.3 and concurrent.output_tokens_per_s == pytest.approx(332.8)
    assert concurrent.source == "lab run 7 (GuideLLM concurrent@4)"
    assert str(concurrent.measured_on) == "2026-11-18"
    assert len(await stored_rows(database)) == 2


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"nothing": 1}, "not a GuideLLM report"),
        ({"benchmarks": []}, "holds no benchmarks"),
        ({"benchmarks": [{"metrics": {}}]}, "missing config.strategy"),
        (
            {"benchmarks": [{"config": {"strategy": {"type_": "synchronous"}}, "metrics": {}}]},
            "time_to_first",
        ),
    ],
)
def test_bad_guidellm_reports_are_explained(report: dict, message: str) -> None:
    with pytest.raises(HearthError) as caught:
        rows_from_guidellm(report, row_labels=labels(model_id="m"), source="x")
    assert caught.value.status == 400 and message in caught.value.message


def test_bench_drives_hearth_and_imports_through_its_api(
    tmp_path: Path, fake: FakeOpenAI, tokenizer: Tokenizer
) -> None:
    import asyncio

    from hearth.auth.service import AuthService

    fake.behaviour.delay = 0.03
    with run_hearth(tmp_path, remote_config((fake.url, {}))) as hearth:
        # Hearth itself as the endpoint: the `chat` alias over the fake upstream, with the admin key.
        config = BenchConfig(
            target=hearth.v1,
            model="chat",
            api_key=hearth.admin_key,
            mode="concurrent",
            concurrency=2,
            max_requests=8,
            prompt_tokens=40,
            output_tokens=6,
        )
        report = asyncio.run(service.run_benchmark(config=config, tokenizer=tokenizer))
        [b] = report.benchmarks
        assert b.successful == 8 and b.output_tokens.mean == 6
        assert b.ttft_ms.p50 >= 30  # the upstream's delay, seen through the gateway
        bad_key = config.model_copy(update={"api_key": "hk-wrong"})
        with pytest.raises(HearthError, match="refused the API key"):
            asyncio.run(service.run_benchmark(config=bad_key, tokenizer=tokenizer))

        url = f"{hearth.url}/api/bench/import"
        body = {"report": guidellm_report(), "gpu": "L4", "quantization": "fp8", "source": "api test"}
        bad = {"report": {"benchmarks": [{"config": {"strategy": {"type_": "constant", "rate": 1}}}]}}
        r = httpx.post(url, json=bad, headers=hearth.headers(), timeout=30)
        assert r.status_code == 400 and "missing config.strategy" in r.json()["error"]["message"]
        r = httpx.post(url, json={**body, "gpu_count": -1}, headers=hearth.headers(), timeout=30)
        assert r.status_code == 422 and "gpu_count" in r.json()["error"]["message"]

        async def user_key() -> str:
            db = Database(hearth.settings.resolved_database_url)
            try:
                auth = AuthService(db)
                user = await auth.create_user(username="bob")
                _, token = await auth.create_key(user_id=user.id, name="k")
                return token
            finally:
                await db.close()

        key = asyncio.run(user_key())
        assert httpx.post(url, json=body, headers=hearth.headers(key), timeout=30).status_code == 403
        assert httpx.post(url, json=body, timeout=30).status_code == 401
        r = httpx.post(url, json=body, headers=hearth.headers(), timeout=30)
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["saved"] == 2 and out["format"] == "guidellm"
        assert {row["gpu"] for row in out["rows"]} == {"L4"} and out["rows"][0]["quantization"] == "fp8"

        async def count() -> int:
            db = Database(hearth.settings.resolved_database_url)
            try:
                return len(await stored_rows(db))
            finally:
                await db.close()

        assert asyncio.run(count()) == 2  # the refused reports left nothing behind


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mode": "constant"}, "needs a request rate"),
        ({"mode": "poisson", "rate": -2}, "greater than 0"),
        ({"mode": "constant", "rate": 0}, "greater than 0"),
        ({"max_seconds": 0}, "greater than 0"),
        ({"max_seconds": -5}, "greater than 0"),
        ({"max_requests": None}, "stop condition"),
        ({"mode": "concurrent"}, "needs concurrency"),
        ({"mode": "concurrent", "concurrency": 0}, "greater than or equal to 1"),
        ({"max_error_rate": 1.5}, "less than or equal to 1"),
        ({"target": "localhost:8000"}, "http(s) URL"),
        ({"mode": "turbo"}, "synchronous"),
    ],
)
def test_bad_load_values_are_refused(overrides: dict, message: str) -> None:
    base = {"target": "http://127.0.0.1:1/v1", "model": "m", "max_requests": 5}
    with pytest.raises(ValidationError) as caught:
        BenchConfig(**{**base, **overrides})
    assert message in str(caught.value)


async def test_unreachable_endpoint_is_a_clear_error(tokenizer: Tokenizer) -> None:
    config = BenchConfig(target=f"http://127.0.0.1:{free_port()}/v1", model="m", max_requests=3)
    with pytest.raises(HearthError) as caught:
        await service.run_benchmark(config=config, tokenizer=tokenizer)
    assert caught.value.status == 400 and "cannot reach http://127.0.0.1:" in caught.value.message


def test_bad_dataset_and_tokenizer_are_explained(tmp_path: Path, tokenizer: Tokenizer) -> None:
    from hearth.bench.prompts import load_dataset

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"question": "no prompt field"}\n')
    with pytest.raises(HearthError, match='line 2: expected a "prompt" or "text" field'):
        load_dataset(bad, tokenizer)
    with pytest.raises(HearthError, match="does not exist"):
        load_dataset(tmp_path / "missing.csv", tokenizer)
    with pytest.raises(HearthError, match="does not exist"):
        load_tokenizer(str(tmp_path / "nope.json"))


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_run_saves_nothing_for_the_planner_unless_it_names_the_model(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    monkeypatch.setenv("HEARTH_HOME", str(home))
    monkeypatch.delenv("HEARTH_DATA_DIR", raising=False)
    monkeypatch.delenv("HEARTH_DATABASE_URL", raising=False)
    args = ["bench", "run", "--target", fake.url, "--model", "fake-model", "--requests", "3"]
    args += ["--prompt-tokens", "20", "--output-tokens", "6", "--model-id", "org/model"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # An alias with a guessed quantization and GPU is not a planner row: nothing stored, and the user is told
    # which flags would make it one.
    assert "not saved for the planner" in result.output and "--quantization --gpu" in result.output
    assert not (home / "hearth.db").exists()
    # The outputs land in the home, not in the folder the command ran from.
    assert len(list((home / "bench-results").glob("bench-*.json"))) == 1


def test_cli_run_sends_hearth_api_key_to_the_hearth_server(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    with run_hearth(tmp_path / "server", remote_config((fake.url, {}))) as hearth:
        monkeypatch.setenv("HEARTH_HOME", str(tmp_path / "client-home"))  # no saved key there
        monkeypatch.setenv("HEARTH_URL", hearth.url)  # no --target: the Hearth server the CLI uses
        for name in ("HEARTH_DATA_DIR", "HEARTH_BENCH_API_KEY", "HEARTH_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        args = ["bench", "run", "--model", "chat", "--requests", "2", "--prompt-tokens", "20"]
        args += ["--output-tokens", "4", "--no-save"]
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 2 and "refused the API key" in refused.output
        monkeypatch.setenv("HEARTH_API_KEY", hearth.admin_key)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"{hearth.url}/v1 (chat)" in result.output


def test_row_labels_come_from_flags_or_the_targets_models_card() -> None:
    from hearth.bench.labels import RowLabels, labels_from_models

    listing = {
        "data": [
            {"id": "other", "root": "org/other"},
            {"id": "served", "root": "/models/llama", "metadata": {"quantization": "fp8", "gpu": "L4-24GB"}},
            {
                "id": "hub",
                "root": "meta-llama/Llama-3.1-8B-Instruct",
                "quantization": "bf16",
                "gpu": "H100-80GB",
            },
        ]
    }
    # A local path is not a model id; what the card lacks, the flags must give.
    assert labels_from_models(listing, "served") == RowLabels(None, "fp8", "L4-24GB")
    assert labels_from_models(listing, "served").missing() == ["--model-id"]
    assert RowLabels(model_id="org/m").or_else(labels_from_models(listing, "served")).missing() == []
    hub = labels_from_models(listing, "hub")
    assert hub == RowLabels("meta-llama/Llama-3.1-8B-Instruct", "bf16", "H100-80GB") and not hub.missing()
    assert labels_from_models(listing, "absent").missing() == ["--model-id", "--quantization", "--gpu"]
    assert labels_from_models({"object": "error"}, "served") == RowLabels()


def test_cli_run_writes_outputs_and_saves_rows(fake: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HEARTH_DATABASE_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "bench",
            "run",
            "--target",
            fake.url,
            "--model",
            "fake-model",
            "--mode",
            "concurrent",
            "--concurrency",
            "2",
            "--requests",
            "6",
            "--prompt-tokens",
            "20",
            "--output-tokens",
            "6",
            "--out",
            str(tmp_path / "out"),
            "--model-id",
            "org/model",
            "--quantization",
            "q4_1",
            "--gpu",
            "cpu",
            "--hardware-label",
            "test box",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "concurrent@2" in result.output
    assert "saved 1 benchmark rows for the planner (org/model q4_1 on 1× cpu;" in result.output
    assert len(list((tmp_path / "out").glob("bench-*.png"))) == 1
    report = json.loads(next((tmp_path / "out").glob("bench-*.json")).read_text())
    assert report["benchmarks"][0]["successful"] == 6 and "api_key" not in report["config"]

    guidellm_file = tmp_path / "benchmarks.json"
    guidellm_file.write_text(json.dumps(guidellm_report()))
    result = runner.invoke(
        app, ["bench", "import", str(guidellm_file), "--gpu", "A100-80GB", "--quantization", "fp8"]
    )
    assert result.exit_code == 0, result.output
    assert "saved 2 benchmark rows" in result.output

    result = runner.invoke(
        app, ["bench", "run", "--target", fake.url, "--model", "m", "--mode", "constant", "--requests", "3"]
    )
    assert result.exit_code == 2 and "needs a request rate" in result.output
    result = runner.invoke(
        app,
        [
            "bench",
            "run",
            "--target",
            f"http://127.0.0.1:{free_port()}/v1",
            "--model",
            "m",
            "--requests",
            "3",
            "--no-save",
        ],
    )
    assert result.exit_code == 2 and "cannot reach" in result.output
