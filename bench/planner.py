"""The planner's speed and accuracy: a full capacity search, and the performance model's error on held-out
rows.

1. Search: every catalog model × quantization × GPU × tensor-parallel size, each at a grid of batch sizes, for
   each of GuideLLM's four traffic profiles (with the SLOs of the use case that uses it). Target: ≤ 100 ms per
   search. The first search also builds the candidate arrays (cached); both are reported.
2. Accuracy: the model calibrated on the seed rows (or on a database's rows with --database), each row held
   out in turn (`with_neighbours`: the rest of its sweep still calibrates the prediction) and each
   (model, quantization, GPU, count) group held out whole (`model_only`: a configuration nobody benchmarked).

    .venv/bin/python bench/planner.py [--rounds 20] [--database sqlite+aiosqlite:///data/hearth.db]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hearth.planner.accuracy import held_out_error
from hearth.planner.catalog import seed_benchmarks, seed_gpus, seed_models
from hearth.planner.predictor import Predictor
from hearth.planner.schemas import Intent
from hearth.planner.search import all_candidates, plan
from hearth.planner.spec import build_spec

# One use case per GuideLLM profile, so the SLOs are the ones a user of that profile would get.
PROFILE_USE_CASES = {
    "512-256": "chatbot_conversational",
    "1024-1024": "code_generation_detailed",
    "4096-512": "document_analysis_rag",
    "10240-1536": "long_document_summarization",
}


def load_predictor(database: str | None) -> Predictor:
    if database is None:
        return Predictor(seed_models(), seed_gpus(), [r for _, r in seed_benchmarks()])
    from hearth.planner.knowledge import list_benchmark_rows, list_gpus, list_models, seed_knowledge_base
    from hearth.platform.db import Database
    from hearth.platform.migrate import upgrade

    async def load() -> Predictor:
        upgrade(database)
        db = Database(database)
        try:
            await seed_knowledge_base(db=db)
            return Predictor(
                await list_models(db=db),
                await list_gpus(db=db),
                await list_benchmark_rows(db=db, limit=100_000),
            )
        finally:
            await db.close()

    return asyncio.run(load())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--database", default=None, help="async SQLAlchemy URL of a Hearth database")
    args = parser.parse_args()

    started = time.perf_counter()
    predictor = load_predictor(args.database)
    print(f"calibration: {len(predictor.rows)} rows, fit in {(time.perf_counter() - started) * 1e3:.0f} ms")

    started = time.perf_counter()
    candidates = all_candidates(predictor)
    build_ms = (time.perf_counter() - started) * 1e3
    print(
        f"candidates: {len(candidates.models)} (model × quantization × GPU × TP), "
        f"built once in {build_ms:.1f} ms"
    )

    print("\nsearch (all candidates × 16 batch sizes, then replicas, cost, latency at load, scores, Pareto):")
    all_rounds = []
    for profile, use_case in PROFILE_USE_CASES.items():
        spec = build_spec(Intent(use_case=use_case, users=args.users))  # type: ignore[arg-type]
        times = []
        result = None
        for _ in range(args.rounds):
            t = time.perf_counter()
            result = plan(predictor, spec, limit=10)
            times.append((time.perf_counter() - t) * 1e3)
        all_rounds.extend(times)
        assert result is not None
        best = result.balanced[0]
        print(
            f"  {profile:>10} {use_case:<28} p50 {statistics.median(times):6.1f} ms  "
            f"max {max(times):6.1f} ms  "
            f"evaluated {result.candidates_evaluated}, meeting SLOs {result.candidates_meeting_slo}; top: "
            f"{best.model_id.split('/')[-1]} {best.quantization} {best.replicas}×{best.gpus_per_replica} "
            f"{best.gpu} ${best.monthly_cost:,.0f}/month"
        )
    all_rounds.sort()
    p95 = all_rounds[int(0.95 * (len(all_rounds) - 1))]
    print(f"  all profiles: p50 {statistics.median(all_rounds):.1f} ms, p95 {p95:.1f} ms (target ≤ 100 ms)")

    started = time.perf_counter()
    report = held_out_error(predictor)
    print(
        f"\nerror on held-out online rows (|predicted / measured − 1|), computed in "
        f"{(time.perf_counter() - started):.1f} s:"
    )
    for mode, part in report.items():
        for metric, m in part["overall"].items():
            print(
                f"  {mode:<28} {metric:<20} rows {m['rows']:>3}  MAPE {m['mape_pct']:5.1f} %  "
                f"median {m['median_pct']:5.1f} %"
            )
        for source, metrics in part["per_source"].items():
            for metric, m in metrics.items():
                print(f"    {source[:58]:<58} {metric:<20} rows {m['rows']:>3}  MAPE {m['mape_pct']:5.1f} %")


if __name__ == "__main__":
    main()
