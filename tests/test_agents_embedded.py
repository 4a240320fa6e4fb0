"""The query router end to end on the embedded models: SmolLM2 classifies, answers from the collection and
judges; MiniLM retrieves. Whatever the small model says, the run completes with a scored answer: its label
or the rules' decide the route, its score or the deterministic signals judge."""

from __future__ import annotations

import httpx
import pytest

from tests.agents_helpers import ingest, nodes
from tests.harness import run_hearth
from tests.helpers import wait_indexed

CONFIG = {
    "include_defaults": False,
    "backends": {
        "local-llm": {"type": "llama_cpp", "n_ctx": 2048},
        "local-embed": {"type": "onnx_embedding"},
        "local-rerank": {"type": "embedding_rerank", "embedder": "local-embed"},
    },
    "aliases": {
        "chat": {"kind": "chat", "deployments": [{"backend": "local-llm"}]},
        "judge": {"kind": "chat", "deployments": [{"backend": "local-llm"}]},
        "embedder": {"kind": "embedding", "deployments": [{"backend": "local-embed"}]},
        "reranker": {"kind": "rerank", "deployments": [{"backend": "local-rerank"}]},
    },
}


@pytest.mark.slow
def test_router_on_the_embedded_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with run_hearth(tmp_path, CONFIG, agents_max_tokens=24, agents_threshold=0) as hearth:
        ingest(
            hearth,
            "home",
            "Boiler manual",
            "The boiler pressure should read 1.5 bar when the system is cold.",
        )
        wait_indexed(hearth, "home", 1)
        r = httpx.post(
            f"{hearth.url}/api/agents/router",
            json={"query": "What should the boiler pressure read?", "collection": "home", "route": "rag"},
            headers=hearth.headers(),
            timeout=300,
        )
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["status"] == "completed", run["error"]
        result = run["result"]
        assert nodes(run) == ["classify", "route", "retrieve", "generate", "judge", "finish"]
        assert result["category"] in ("factual", "analytical", "creative", "chit-chat")
        assert result["classified_by"] in ("model", "rules") and result["judged_by"] in ("model", "signals")
        assert result["answer"].strip() and 0 <= result["score"] <= 100 and result["passed"]
        assert result["sources"][0]["title"] == "Boiler manual"
        generate = next(s for s in run["steps"] if s["node"] == "generate")
        assert 0 < generate["tokens"]["completion"] <= 24 and generate["tokens"]["prompt"] > 20
        assert generate["models"] == ["chat"] and generate["model_ms"] > 0
