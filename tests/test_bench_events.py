"""Every way benchmark rows reach the planner's knowledge base announces them with one `BenchmarkRowsAdded`
(exact count and sources): the planner's own route, the bench's report import, and the offline CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from hearth.config import Settings
from hearth.events import codec
from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.planner.events import BenchmarkRowsAdded
from hearth.planner.schemas import BenchmarkRowIn
from hearth.planner.service import PlannerService
from hearth.platform.db import Database
from tests.harness import run_hearth
from tests.helpers import wait_until
from tests.test_bench_results import guidellm_report

EMPTY_CATALOG = {"include_defaults": False, "backends": {}, "aliases": {}}
GUIDELLM_SOURCES = "lab run 9 (GuideLLM concurrent@4); lab run 9 (GuideLLM constant@2.5/s)"


def row(**overrides: Any) -> dict[str, Any]:
    base = {
        "model_id": "Qwen/Qwen2.5-7B-Instruct",
        "quantization": "bf16",
        "gpu": "L40S-48GB",
        "prompt_tokens": 700,
        "output_tokens": 300,
        "concurrency": 12,
        "itl_ms_p50": 31.0,
        "source": "hearth bench run events",
        "measured_on": "2026-11-21",
        "kind": "measured",
    }
    return {**base, **overrides}


async def announced(db: Database) -> list[BenchmarkRowsAdded]:
    """The `BenchmarkRowsAdded` events in the outbox, oldest first."""
    async with db.transaction() as s:
        rows = await s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "BenchmarkRowsAdded").order_by(OutboxEvent.seq)
        )
        return [codec.decode(r.type, r.content_type, r.payload) for r in rows]  # type: ignore[misc]


async def test_rows_are_announced_with_their_count_and_sources(database: Database) -> None:
    planner = PlannerService(db=database, bus=EventBus(database), settings=Settings())
    rows = [
        BenchmarkRowIn.model_validate(row(source="run b")),
        BenchmarkRowIn.model_validate(row(source="run a", concurrency=4)),
        BenchmarkRowIn.model_validate(row(source="run b", concurrency=8)),
    ]
    assert await planner.add_benchmark_rows(rows) == 3
    [event] = await announced(database)
    assert (event.count, event.source) == (3, "run a; run b")


def test_bench_import_announces_rows_like_the_planner_route(tmp_path: Path) -> None:
    with run_hearth(tmp_path, EMPTY_CATALOG) as hearth:
        seen: list[BenchmarkRowsAdded] = []

        async def on_rows(event: BenchmarkRowsAdded) -> None:
            seen.append(event)

        hearth.app.state.platform.bus.subscribe("test-rows-added", on_rows, types={"BenchmarkRowsAdded"})
        r = httpx.post(
            f"{hearth.url}/api/planner/benchmarks", json=[row()], headers=hearth.headers(), timeout=30
        )
        assert r.status_code == 201, r.text
        wait_until(lambda: len(seen) == 1, what="the planner route's event")
        assert (seen[0].count, seen[0].source) == (1, "hearth bench run events")

        url = f"{hearth.url}/api/bench/import"
        refused = {"report": {"benchmarks": [{"config": {"strategy": {"type_": "constant", "rate": 1}}}]}}
        r = httpx.post(url, json=refused, headers=hearth.headers(), timeout=30)
        assert r.status_code == 400
        body = {"report": guidellm_report(), "gpu": "L4-24GB", "quantization": "fp8", "source": "lab run 9"}
        r = httpx.post(url, json=body, headers=hearth.headers(), timeout=30)
        assert r.status_code == 201, r.text
        wait_until(lambda: len(seen) >= 2, what="the bench import's event")
        # The refused report came first and announced nothing: the next event is the accepted import's.
        assert [(e.count, e.source) for e in seen] == [(1, "hearth bench run events"), (2, GUIDELLM_SOURCES)]


def test_offline_cli_import_announces_rows(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HEARTH_DATABASE_URL", raising=False)
    report = tmp_path / "benchmarks.json"
    report.write_text(json.dumps(guidellm_report()))
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "import",
            str(report),
            "--gpu",
            "A100-80GB",
            "--quantization",
            "fp8",
            "--source",
            "lab run 9",
        ],
    )
    assert result.exit_code == 0, result.output

    async def events() -> list[BenchmarkRowsAdded]:
        db = Database(Settings().resolved_database_url)
        try:
            return await announced(db)
        finally:
            await db.close()

    # Stored in the database's outbox: the server's bus delivers it (it outlives the CLI process).
    assert [(e.count, e.source) for e in asyncio.run(events())] == [(2, GUIDELLM_SOURCES)]
