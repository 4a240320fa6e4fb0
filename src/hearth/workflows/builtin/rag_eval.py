"""Built-in pipeline `rag-eval`: a collection × judged queries → nDCG@10, Recall@100 and MRR@10 per
retrieval mode, as the run's metrics (compare two runs of one experiment to see which settings won).

Retrieval and scoring are the rag context's own (its `RetrievalEvaluator` port), the same path
`hearth rag eval` measures over HTTP; this pipeline adds the run, the experiment and the artifacts."""

from __future__ import annotations

import csv
from typing import Any

import orjson

from hearth.platform.errors import HearthError
from hearth.rag.ports import EVALUATOR, RetrievalEvaluator
from hearth.workflows.pipeline import Param, Pipeline, StepContext

MODES = ("dense", "sparse", "hybrid")

pipeline = Pipeline(
    "rag-eval",
    version="1",
    description="Retrieval quality of a collection on judged queries: nDCG@10, Recall@100, MRR@10 per mode.",
    params={
        "collection": Param(str, help="collection name or id (yours or shared with you)"),
        "queries": Param("artifact", help="URI of the queries file (file:// or s3://)"),
        "qrels": Param("artifact", help="URI of the relevance judgements"),
        "format": Param(str, default="smart", help="beir, trec or smart"),
        "modes": Param(str, default="dense,sparse,hybrid", help="comma-separated retrieval modes"),
        "depth": Param(int, default=100, help="chunks retrieved per query (Recall@100 needs 100)"),
    },
    metrics={"ndcg10": "max", "recall100": "max", "mrr10": "max"},
)


def _evaluator(ctx: StepContext) -> RetrievalEvaluator:
    found = ctx.ports.find(EVALUATOR) if ctx.ports is not None else None
    if found is None:
        raise RuntimeError("the rag context is not running in this server, so there is nothing to evaluate")
    return found


@pipeline.step(outputs={"queries": int, "modes": list}, artifacts={"judged": "dataset"})
async def load(ctx: StepContext) -> dict[str, Any]:
    """Read the queries and their judgements; keep the judged ones."""
    modes = [m.strip() for m in ctx.params["modes"].split(",") if m.strip()]
    wrong = [m for m in modes if m not in MODES]
    if not modes or wrong:
        raise ValueError(f"modes must be among {', '.join(MODES)}, not {ctx.params['modes']!r}")
    if ctx.params["depth"] < 10:
        raise ValueError("depth must be at least 10 (nDCG@10 and MRR@10 need ten results)")
    queries, qrels = _evaluator(ctx).load_judgements(
        queries=ctx.input_path("params.queries"),
        qrels=ctx.input_path("params.qrels"),
        fmt=ctx.params["format"],
    )
    ctx.artifact_path("judged").write_bytes(orjson.dumps({"queries": queries, "qrels": qrels}))
    ctx.log(f"{len(queries)} judged queries, modes {', '.join(modes)}")
    return {"queries": len(queries), "modes": modes}


@pipeline.step(after=[load], outputs={"scores": dict, "best_mode": str}, artifacts={"scores": "metrics"})
async def evaluate(ctx: StepContext) -> dict[str, Any]:
    """Run every judged query through each mode (no rerank) and score the rankings."""
    judged = orjson.loads(ctx.input_path("load.judged").read_bytes())
    evaluator = _evaluator(ctx)
    scores: dict[str, dict[str, float]] = {}
    for mode in ctx.upstream["load"]["modes"]:
        try:
            result = await evaluator.evaluate(
                user_id=ctx.owner_id,
                collection=ctx.params["collection"],
                queries=judged["queries"],
                qrels=judged["qrels"],
                mode=mode,
                depth=ctx.params["depth"],
            )
        except HearthError as exc:  # e.g. a collection the owner cannot read: say so, not a traceback
            raise RuntimeError(exc.message) from None
        scores[mode] = result
        for name in ("ndcg10", "recall100", "mrr10"):
            ctx.metric(f"{mode}.{name}", result[name])
        ctx.log(
            f"{mode}: nDCG@10 {result['ndcg10']:.4f}  Recall@100 {result['recall100']:.4f}  "
            f"MRR@10 {result['mrr10']:.4f}"
        )
    ctx.artifact_path("scores").write_bytes(orjson.dumps(scores, option=orjson.OPT_INDENT_2))
    best = max(scores, key=lambda m: scores[m]["ndcg10"])
    return {"scores": scores, "best_mode": best}


@pipeline.step(after=[evaluate], artifacts={"table": "report"})
def report(ctx: StepContext) -> None:
    """The scores as a CSV table (one row per mode)."""
    scores = ctx.upstream["evaluate"]["scores"]
    with ctx.artifact_path("table").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["mode", "ndcg10", "recall100", "mrr10", "queries"])
        for mode, s in scores.items():
            writer.writerow(
                [mode, f"{s['ndcg10']:.4f}", f"{s['recall100']:.4f}", f"{s['mrr10']:.4f}", int(s["queries"])]
            )
    print(f"best mode by nDCG@10: {ctx.upstream['evaluate']['best_mode']}")
