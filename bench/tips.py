"""Tips: pre-compute for many users on SQLite and PostgreSQL, and POST /api/tips/next's latency split into
prompt assembly and model time on the embedded SmolLM2.

Pre-compute: N users (default 10,000), each with a profile, consents, a connector, 8 open tasks (2 overdue),
5 completed tasks and 2 tips with feedback; then one scheduled pass of the 5 built-in agents (the agents'
own work and its SQL; no model). Target: < 60 s for 10,000 users.
tips/next: the same service the route calls, for one user with fresh outputs: assembly (profile, fresh
snippets, blocked tasks, the prompt) timed alone over many rounds, then whole tips with the model.
Target: assembly p95 <= 20 ms.

    PYTHONPATH=src .venv/bin/python bench/tips.py [--users 10000] [--db sqlite,postgres] [--tips 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import yaml
from sqlalchemy import insert

from hearth.auth.models import User
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.platform.core import build_platform, close_platform
from hearth.platform.db import Database, new_id
from hearth.platform.migrate import upgrade
from hearth.tips.locks import AgentLocks
from hearth.tips.manifest import Registry
from hearth.tips.models import (
    TipFeedback,
    TipsConnector,
    TipsConsent,
    TipScore,
    TipsPreferences,
    TipsSignal,
)
from hearth.tips.ports import SERVICE
from hearth.tips.precompute import Precompute
from hearth.tips.wiring import CONTEXT

POSTGRES = os.environ.get("HEARTH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def seed(db: Database, users: int, *, chunk: int = 2000) -> list[str]:
    now = datetime.now(UTC)
    ids = [new_id() for _ in range(users)]
    for start in range(0, users, chunk):
        part = ids[start : start + chunk]
        user_rows, prefs, consents, connectors, signals, tips, feedback = [], [], [], [], [], [], []
        for n, uid in enumerate(part, start):
            user_rows.append(
                {
                    "id": uid,
                    "username": f"bench{n}",
                    "role": "user",
                    "premium": False,
                    "disabled": False,
                    "created_at": now,
                }
            )
            prefs.append(
                {
                    "user_id": uid,
                    "tone": "friendly",
                    "tip_length": "short",
                    "language": "en",
                    "timezone": "Europe/Paris" if n % 2 else "UTC",
                    "work_start": "09:00",
                    "work_end": "17:00",
                    "channels": ["in_app"],
                    "disabled_agents": [],
                    "updated_at": now,
                }
            )
            for key in ("tasks.read", "history.read"):
                consents.append({"user_id": uid, "key": key, "granted": True, "updated_at": now})
            cid = new_id()
            connectors.append(
                {
                    "id": cid,
                    "user_id": uid,
                    "kind": "todoist",
                    "name": "todoist",
                    "config": {},
                    "cursor": {},
                    "status": "ok",
                    "failures": 0,
                    "next_sync_at": now + timedelta(hours=1),
                    "created_at": now,
                }
            )
            for i in range(8):
                due = now + timedelta(days=i - 2) if i % 3 != 2 else None
                signals.append(
                    {
                        "id": new_id(),
                        "user_id": uid,
                        "connector_id": cid,
                        "kind": "task.open",
                        "external_id": f"o{i}",
                        "title": f"Open task {i} of user {n}",
                        "project": ("Work", "Home", "Errands")[i % 3],
                        "due_at": due,
                        "at": None,
                        "priority": 1 + i % 4,
                        "updated_at": now,
                    }
                )
            for i in range(5):
                signals.append(
                    {
                        "id": new_id(),
                        "user_id": uid,
                        "connector_id": cid,
                        "kind": "task.completed",
                        "external_id": f"c{i}",
                        "title": f"Done task {i}",
                        "project": "Work",
                        "due_at": None,
                        "at": now - timedelta(days=i, hours=1),
                        "priority": 1,
                        "updated_at": now,
                    }
                )
            for i, action in enumerate(("done", "dismiss")):
                tid = new_id()
                tips.append(
                    {
                        "id": tid,
                        "user_id": uid,
                        "text": f"Tip {i}",
                        "fingerprint": f"{i:064d}",
                        "subject_ref": f"{cid}:o{i}",
                        "subject_title": f"Open task {i} of user {n}",
                        "contributing_agents": ["overdue-tasks"],
                        "prompt_version": "tips-v1",
                        "model": "bench",
                        "fallback": False,
                        "candidates": [],
                        "latency_ms": 1.0,
                        "assembly_ms": 1.0,
                        "model_ms": 1.0,
                        "status": action if action == "done" else "dismissed",
                        "expires_at": now + timedelta(hours=4),
                        "created_at": now - timedelta(days=1),
                    }
                )
                feedback.append(
                    {
                        "id": new_id(),
                        "tip_id": tid,
                        "user_id": uid,
                        "action": action,
                        "source_closed": False,
                        "created_at": now - timedelta(days=1),
                    }
                )
        async with db.transaction() as s:
            for model, rows in (
                (User, user_rows),
                (TipsPreferences, prefs),
                (TipsConsent, consents),
                (TipsConnector, connectors),
                (TipsSignal, signals),
                (TipScore, tips),
                (TipFeedback, feedback),
            ):
                await s.execute(insert(model), rows)
    return ids


async def precompute(url: str, users: int) -> dict[str, float]:
    upgrade(url)
    db = Database(url)
    try:
        t0 = time.perf_counter()
        await seed(db, users)
        seeded = time.perf_counter() - t0
        registry = Registry.load()
        pre = Precompute(db, EventBus(db), registry, AgentLocks(db))
        t1 = time.perf_counter()
        results = await pre.run_due()
        total = time.perf_counter() - t1
        out = {"seed_s": seeded, "total_s": total, "agents_s": sum(r.seconds for r in results)}
        for r in results:
            out[f"{r.agent_id}_s"] = r.seconds
            out[f"{r.agent_id}_written"] = r.written
        return out
    finally:
        await db.close()


async def next_latency(tmp: Path, rounds: int, tips: int) -> dict[str, float]:
    config = tmp / "hearth.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "include_defaults": False,
                "backends": {"local-llm": {"type": "llama_cpp", "n_ctx": 2048}},
                "aliases": {
                    "tip-generator": {"kind": "chat", "deployments": [{"backend": "local-llm"}]},
                    "judge": {"kind": "chat", "deployments": [{"backend": "local-llm"}]},
                },
            }
        )
    )
    settings = Settings(data_dir=tmp / "data", config_file=config, tips_tick_seconds=0)
    platform = await build_platform(settings, [CONTEXT])
    try:
        (user,) = await seed(platform.db, 1)
        service = platform.ports.require(SERVICE)
        orchestrator = service.orchestrator
        now = datetime.now(UTC)
        await orchestrator.refresh(user, now)
        assembly, assembly_cpu = [], []
        for _ in range(rounds):
            t, c = time.perf_counter(), time.process_time()
            await orchestrator.assemble(user, now)
            assembly.append((time.perf_counter() - t) * 1000)
            # CPU time of the process (aiosqlite's thread too): not inflated by waiting on a busy machine
            assembly_cpu.append((time.process_time() - c) * 1000)
        whole, model, in_tip_assembly, fallbacks = [], [], [], 0
        for _ in range(tips):
            tip = await service.next_tip(user_id=user)
            whole.append(tip.latency_ms)
            model.append(tip.model_ms)
            in_tip_assembly.append(tip.assembly_ms)
            fallbacks += tip.fallback
        return {
            "assembly_p50_ms": statistics.median(assembly),
            "assembly_p95_ms": pct(assembly, 0.95),
            "assembly_cpu_p50_ms": statistics.median(assembly_cpu),
            "assembly_cpu_p95_ms": pct(assembly_cpu, 0.95),
            "in_tip_assembly_p95_ms": pct(in_tip_assembly, 0.95),
            "model_p50_ms": statistics.median(model),
            "model_p95_ms": pct(model, 0.95),
            "tip_p50_ms": statistics.median(whole),
            "fallbacks": fallbacks,
            "tips": tips,
        }
    finally:
        await close_platform(platform)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=300, help="assembly-only rounds")
    parser.add_argument("--tips", type=int, default=8, help="whole tips with the model")
    parser.add_argument("--skip-next", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in filter(None, args.db.split(",")):  # --db "": only the tips/next part
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
                schema = None
            else:
                schema = f"bench_tips_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f'CREATE SCHEMA "{schema}"')
                base = POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1)
                url = f"{base}?options=-csearch_path%3D{schema}"
            try:
                figures = asyncio.run(precompute(url, args.users))
            finally:
                if schema:
                    with psycopg.connect(POSTGRES, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            agents = ", ".join(
                f"{k[:-2]} {v:.2f}s"
                for k, v in figures.items()
                if k.endswith("_s") and k not in ("seed_s", "total_s", "agents_s")
            )
            print(
                f"pre-compute {backend}: {args.users} users x 5 agents in {figures['total_s']:.2f} s "
                f"(seeding {figures['seed_s']:.1f} s); the agents' own work "
                f"{figures['agents_s']:.2f} s: {agents}"
            )
        if not args.skip_next:
            n = asyncio.run(next_latency(Path(tmp), args.rounds, args.tips))
            print(
                f"tips/next (embedded SmolLM2, 1 thread): assembly p50 {n['assembly_p50_ms']:.2f} ms, "
                f"p95 {n['assembly_p95_ms']:.2f} ms (CPU p50 {n['assembly_cpu_p50_ms']:.2f}, "
                f"p95 {n['assembly_cpu_p95_ms']:.2f} ms) "
                f"(in whole tips p95 {n['in_tip_assembly_p95_ms']:.2f} ms) | "
                f"model p50 {n['model_p50_ms']:.0f} ms, p95 {n['model_p95_ms']:.0f} ms | whole tip p50 "
                f"{n['tip_p50_ms']:.0f} ms | fallbacks {n['fallbacks']}/{n['tips']}"
            )


if __name__ == "__main__":
    main()
