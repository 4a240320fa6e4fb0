"""The built-in pipelines end to end on small inputs, through a real server.

rag-eval: a collection ingested through the API and embedded by the embedded MiniLM, judged queries (BEIR
files) → nDCG@10, Recall@100 and MRR@10 per mode as the run's metrics; two runs compared (the collection
whose documents carry the right ids wins). bench-sweep: a sweep against a fake OpenAI-compatible server on
loopback → rows in the planner's knowledge base and the report as JSON, CSV and PNG artifacts."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx

from tests.fake_openai import FakeOpenAI
from tests.harness import rag_config, run_hearth
from tests.helpers import wait_until
from tests.test_workflows_api import FAST, api, finished, start, steps

DOCS = {
    "d1": "The boundary layer on a flat plate thickens downstream as viscous effects grow.",
    "d2": "Supersonic flow past a wedge produces an oblique shock wave attached to the nose.",
    "d3": "Heat transfer to a cylinder in hypersonic flow rises sharply near the stagnation point.",
    "d4": "Buckling of thin cylindrical shells under axial compression depends on imperfections.",
    "d5": "Wing flutter appears when aerodynamic forces couple with the structural bending modes.",
    "d6": "Turbulent jets mix with the surrounding air and spread linearly with distance.",
}
QUERIES = {
    "q1": "how does the boundary layer grow on a flat plate",
    "q2": "oblique shock on a wedge in supersonic flow",
    "q3": "buckling of cylindrical shells in compression",
}
QRELS = {"q1": "d1", "q2": "d2", "q3": "d4"}


def _ingest(hearth: Any, name: str, docs: dict[str, str]) -> None:
    h = hearth.headers()
    collection = httpx.post(f"{hearth.url}/api/rag/collections", json={"name": name}, headers=h).json()
    body = {"documents": [{"text": text, "title": "", "source": source} for source, text in docs.items()]}
    r = httpx.post(
        f"{hearth.url}/api/rag/collections/{collection['id']}/documents/batch",
        json=body,
        headers=h,
        timeout=60,
    )
    assert r.status_code in (200, 201, 202), r.text

    def indexed() -> bool:
        listed = httpx.get(f"{hearth.url}/api/rag/collections/{collection['id']}/documents", headers=h).json()
        return len(listed) == len(docs) and all(d["status"] == "indexed" for d in listed)

    wait_until(indexed, 120, what=f"{name} indexed", every=0.2)


def test_rag_eval_scores_modes_and_compares_two_collections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    chat = FakeOpenAI().start()
    queries, qrels = tmp_path / "queries.jsonl", tmp_path / "qrels.tsv"
    queries.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items()))
    try:
        with run_hearth(tmp_path, rag_config(chat.url), **FAST) as hearth:
            _ingest(hearth, "right", DOCS)
            # The same texts under shifted ids: retrieval finds the texts, the judgements name other ids.
            ids = list(DOCS)
            _ingest(hearth, "shifted", {ids[(i + 1) % len(ids)]: DOCS[d] for i, d in enumerate(ids)})
            params = {"queries": queries.as_uri(), "qrels": qrels.as_uri(), "format": "beir", "depth": 10}
            right = finished(
                hearth,
                start(hearth, "rag-eval", params={**params, "collection": "right"}, experiment="rag")["id"],
                within=120,
            )
            assert right["status"] == "succeeded", right
            metrics = right["metrics"]
            assert set(metrics) == {
                f"{m}.{k}" for m in ("dense", "sparse", "hybrid") for k in ("ndcg10", "recall100", "mrr10")
            }
            assert (
                metrics["sparse.mrr10"] == 1.0 and metrics["hybrid.recall100"] == 1.0
            )  # small, distinct topics
            assert all(0.5 <= v <= 1.0 for v in metrics.values())
            table = api(hearth, "GET", f"/runs/{right['id']}/artifacts/report.table").text
            rows = list(csv.DictReader(io.StringIO(table)))
            assert [r["mode"] for r in rows] == ["dense", "sparse", "hybrid"] and rows[0]["queries"] == "3"
            assert steps(right)["load"]["outputs"] == {"queries": 3, "modes": ["dense", "sparse", "hybrid"]}

            shifted = finished(
                hearth,
                start(hearth, "rag-eval", params={**params, "collection": "shifted"}, experiment="rag")["id"],
                within=120,
            )
            assert shifted["status"] == "succeeded"
            comparison = api(hearth, "GET", "/experiments/rag/compare").json()
            assert comparison["params_differing"] == ["collection"]
            winners = {m["name"]: m["best"] for m in comparison["metrics"]}
            assert winners["sparse.ndcg10"] == winners["dense.ndcg10"] == right["id"]

            # Bad input is an error on the run, in words.
            missing = finished(
                hearth, start(hearth, "rag-eval", params={**params, "collection": "nope"})["id"], within=60
            )
            assert missing["status"] == "failed" and "'nope'" in missing["error"], missing["error"]
            wrong = finished(
                hearth,
                start(hearth, "rag-eval", params={**params, "collection": "right", "format": "smart"})["id"],
            )
            assert (
                wrong["status"] == "failed"
                and "as smart relevance judgements: invalid literal" in wrong["error"]
            )
    finally:
        chat.stop()


def test_bench_sweep_saves_rows_for_the_planner_and_reports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    try:
        with run_hearth(
            tmp_path, {"include_defaults": False, "backends": {}, "aliases": {}}, **FAST
        ) as hearth:
            before = len(
                httpx.get(
                    f"{hearth.url}/api/planner/benchmarks", params={"limit": 10000}, headers=hearth.headers()
                ).json()
            )
            params = {
                "target": upstream.url,
                "model": "fake-model",
                "requests": 4,
                "sweep_size": 3,
                "max_concurrency": 4,
                "gpu": "L4",
            }
            run = finished(hearth, start(hearth, "bench-sweep", params=params)["id"], within=180)
            assert run["status"] == "succeeded", run
            assert steps(run)["sweep"]["outputs"] == {"load_points": 3}
            assert steps(run)["save"]["outputs"] == {"rows": 3}
            assert run["metrics"]["max_requests_per_s"] > 0
            rows = httpx.get(
                f"{hearth.url}/api/planner/benchmarks", params={"limit": 10000}, headers=hearth.headers()
            ).json()
            assert len(rows) == before + 3
            bench_id = json.loads(_get(hearth, run, "sweep.report.json"))["run_id"]
            saved = [r for r in rows if r["source"].startswith(f"hearth bench run {bench_id} (")]
            assert len(saved) == 3 and {r["gpu"] for r in saved} == {"L4"}
            names = {(a["step"], a["name"]) for a in run["artifacts"]}
            assert names == {("sweep", "report.json"), ("charts", "report.csv"), ("charts", "report.png")}
            assert _get(hearth, run, "charts.report.png", raw=True)[:8] == b"\x89PNG\r\n\x1a\n"
            lines = _get(hearth, run, "charts.report.csv").splitlines()
            assert len(lines) == 4 and lines[0].startswith("run_id,")
    finally:
        upstream.stop()


def _get(hearth: Any, run: dict[str, Any], ref: str, raw: bool = False) -> Any:
    r = api(hearth, "GET", f"/runs/{run['id']}/artifacts/{ref}")
    assert r.status_code == 200, r.text
    return r.content if raw else r.text
