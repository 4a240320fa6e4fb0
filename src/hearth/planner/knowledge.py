"""The knowledge base in SQL: the model catalog, GPU profiles and benchmark rows the predictor calibrates on.

Seeded from the package's data files at start-up; from then on the tables are the truth, so rows the bench
adds count too. Rows are only added with a `BenchmarkRowsAdded` event in the same transaction."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from sqlalchemy import func, select

from hearth.events.bus import EventBus
from hearth.planner.catalog import (
    DESCRIPTIVE_FIELDS,
    GpuSpec,
    ModelSpec,
    seed_benchmarks,
    seed_gpus,
    seed_models,
)
from hearth.planner.events import BenchmarkRowsAdded
from hearth.planner.models import BenchmarkRow, CatalogModel, GpuProfile
from hearth.planner.schemas import BenchmarkRowIn, BenchmarkRowOut
from hearth.platform.db import Database
from hearth.platform.kit.leases import advisory_xact_lock

_GPU_FIELDS = tuple(f.name for f in fields(GpuSpec))
_MODEL_FIELDS = tuple(f.name for f in fields(ModelSpec) if f.name not in ("quantizations", "tasks"))


async def add_benchmark_rows(*, db: Database, bus: EventBus, rows: list[BenchmarkRowIn]) -> int:
    """Store rows (all or none) with a `BenchmarkRowsAdded` event in their transaction; returns how many."""
    async with db.transaction() as session:
        session.add_all(BenchmarkRow(**row.model_dump()) for row in rows)
        if rows:
            sources = sorted({r.source for r in rows})
            await bus.publish(
                BenchmarkRowsAdded(count=len(rows), source="; ".join(sources)[:500]), session=session
            )
    return len(rows)


async def seed_knowledge_base(*, db: Database) -> None:
    """Write the packaged catalog, GPU profiles and seed rows; refreshes existing entries, duplicates none."""
    async with db.transaction() as session:
        # Replicas starting together seed one at a time: otherwise two inserts of one new catalog row race
        # and the loser's start-up fails on the primary key.
        await advisory_xact_lock(session, "planner.seed")
        for m in seed_models():
            await session.merge(
                CatalogModel(**{**asdict(m), "quantizations": list(m.quantizations), "tasks": list(m.tasks)})
            )
        for g in seed_gpus():
            await session.merge(GpuProfile(**asdict(g)))
        stored = {
            r.seed_key: r
            for r in (
                await session.scalars(select(BenchmarkRow).where(BenchmarkRow.seed_key.is_not(None)))
            ).all()
        }
        for key, row in seed_benchmarks():
            existing = stored.get(key)
            if existing is None:
                session.add(BenchmarkRow(**row.model_dump(), seed_key=key))
                continue
            for name in DESCRIPTIVE_FIELDS:  # refresh what the data file now says about a known row
                if getattr(existing, name) != getattr(row, name):
                    setattr(existing, name, getattr(row, name))


async def list_models(*, db: Database) -> list[ModelSpec]:
    """The model catalog."""
    async with db.transaction() as session:
        rows = (await session.scalars(select(CatalogModel).order_by(CatalogModel.id))).all()
    return [
        ModelSpec(
            **{k: getattr(r, k) for k in _MODEL_FIELDS},
            quantizations=tuple(r.quantizations),
            tasks=tuple(r.tasks),
        )
        for r in rows
    ]


async def list_gpus(*, db: Database) -> list[GpuSpec]:
    """The GPU profiles."""
    async with db.transaction() as session:
        rows = (await session.scalars(select(GpuProfile).order_by(GpuProfile.name))).all()
    # GpuSpec stays a plain dataclass: the search reads its fields in tight loops.
    return [GpuSpec(**{k: getattr(r, k) for k in _GPU_FIELDS}) for r in rows]


async def list_benchmark_rows(
    *, db: Database, model_id: str | None = None, gpu: str | None = None, limit: int = 1000
) -> list[BenchmarkRowOut]:
    """Benchmark rows, newest first, optionally for one model and/or GPU."""
    query = select(BenchmarkRow).order_by(BenchmarkRow.created_at.desc(), BenchmarkRow.id).limit(limit)
    if model_id:
        query = query.where(BenchmarkRow.model_id == model_id)
    if gpu:
        query = query.where(BenchmarkRow.gpu == gpu)
    async with db.transaction() as session:
        rows = (await session.scalars(query)).all()
    return [BenchmarkRowOut.model_validate(r) for r in rows]


async def fingerprint(*, db: Database) -> tuple[Any, ...]:
    """Counts and newest timestamps of rows and GPU profiles: changes whenever the predictor must refit."""
    async with db.transaction() as session:
        result = await session.execute(select(func.count(BenchmarkRow.id), func.max(BenchmarkRow.created_at)))
        bench = tuple(result.one())
        result = await session.execute(select(func.count(GpuProfile.name), func.max(GpuProfile.created_at)))
        return bench + tuple(result.one())
