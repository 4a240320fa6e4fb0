"""Hearth's own tools, each over another context's port (never its tables): RAG search, document fetch,
planner predict, bench status, and a calculator. Tools that need a context not loaded are left out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hearth.agents import calculator
from hearth.agents.tools import ToolContext, ToolRegistry, typed_tool
from hearth.planner.ports import Predictions
from hearth.planner.schemas import PredictRequest
from hearth.rag.ports import DocumentReader, Retriever

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"


class RagSearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1, max_length=128, pattern=_NAME, description="Collection name or id")
    query: str = Field(min_length=1, max_length=2000, description="What to search for")
    top_k: int = Field(10, ge=1, le=100, description="Candidates retrieved")
    top_n: int = Field(3, ge=1, le=10, description="Passages returned")
    mode: Literal["dense", "sparse", "hybrid"] | None = None


class DocumentFetchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: str = Field(min_length=1, max_length=64, description="A document id from rag_search")


class BenchStatusArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str | None = Field(None, max_length=200, description="Only rows of this model")
    gpu: str | None = Field(None, max_length=100, description="Only rows on this GPU profile")
    limit: int = Field(10, ge=1, le=100)


class CalculatorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(min_length=1, max_length=500, description="Arithmetic, e.g. (3 + 4) * 2 ** 10")


def register_builtin(
    registry: ToolRegistry,
    *,
    retriever: Retriever | None,
    documents: DocumentReader | None,
    predictions: Predictions | None,
) -> None:
    timeout = registry.default_timeout
    if retriever is not None:

        async def rag_search(args: RagSearchArgs, ctx: ToolContext) -> list[dict[str, Any]]:
            found = await retriever.retrieve(
                user_id=ctx.user_id,
                collection=args.collection,
                query=args.query,
                top_k=args.top_k,
                top_n=args.top_n,
                mode=args.mode,
            )
            return [
                {
                    "document_id": s.document_id,
                    "title": s.title,
                    "text": s.text,
                    "score": round(s.score, 4),
                }
                for s in found
            ]

        registry.register(
            typed_tool(
                "rag_search",
                "Search one of your RAG collections; the best passages with their document ids.",
                RagSearchArgs,
                rag_search,
                timeout=timeout,
            )
        )
    if documents is not None:

        async def document_fetch(args: DocumentFetchArgs, ctx: ToolContext) -> dict[str, Any]:
            doc = await documents.get_document(user_id=ctx.user_id, document_id=args.document_id)
            return doc.model_dump(mode="json")

        registry.register(
            typed_tool(
                "document_fetch",
                "One document of your collections by id: title, source, status, chunks, metadata.",
                DocumentFetchArgs,
                document_fetch,
                timeout=timeout,
            )
        )
    if predictions is not None:

        async def planner_predict(args: PredictRequest, ctx: ToolContext) -> dict[str, Any]:
            return (await predictions.predict(request=args)).model_dump(mode="json")

        async def bench_status(args: BenchStatusArgs, ctx: ToolContext) -> dict[str, Any]:
            rows = await predictions.benchmark_rows(model_id=args.model_id, gpu=args.gpu, limit=args.limit)
            return {
                "rows": len(rows),
                "latest": [
                    r.model_dump(
                        mode="json",
                        include={
                            "model_id",
                            "gpu",
                            "gpu_count",
                            "concurrency",
                            "request_rate",
                            "ttft_ms_p50",
                            "itl_ms_p50",
                            "output_tokens_per_s",
                            "source",
                            "measured_on",
                        },
                    )
                    for r in rows
                ],
            }

        registry.register(
            typed_tool(
                "planner_predict",
                "Predict TTFT, inter-token latency, end-to-end latency and throughput of a model on GPUs "
                "at a load (the planner's performance model).",
                PredictRequest,
                planner_predict,
                timeout=timeout,
            )
        )
        registry.register(
            typed_tool(
                "bench_status",
                "The newest benchmark results in the planner's knowledge base (bench runs and imports).",
                BenchStatusArgs,
                bench_status,
                timeout=timeout,
            )
        )

    async def calculate(args: CalculatorArgs, ctx: ToolContext) -> dict[str, Any]:
        return {"expression": args.expression, "value": calculator.evaluate(args.expression)}

    registry.register(
        typed_tool(
            "calculator",
            "Evaluate an arithmetic expression (+ - * / // % ** and sqrt, log, exp, sin, cos, min, max).",
            CalculatorArgs,
            calculate,
            timeout=timeout,
        )
    )
    # tips_next: the tips context (built in parallel) registers its tool through agents.ports.TOOLS when
    # it is loaded; see docs/agents.md, "Adding a tool".
