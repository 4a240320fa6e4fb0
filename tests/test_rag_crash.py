"""Kill -9 the server in the middle of a large ingest, restart it: every document ends indexed exactly once
(or failed), and no index holds a chunk of a version that is not active."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from hearth.rag.keyword import KeywordIndex
from hearth.rag.lance import LanceStore
from tests.harness import free_port
from tests.helpers import wait_until
from tests.test_rag_service import EMBED_ONLY

WORDS = ["lift", "drag", "thrust", "weight", "stall", "flutter", "buffet", "shock", "wave", "nozzle", "inlet"]


def _start(data_dir: Path, config: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "HEARTH_DATA_DIR": str(data_dir),
        "HEARTH_CONFIG_FILE": str(config),
        "HEARTH_PORT": str(port),
        "HEARTH_RAG_WORKER_BATCH": "6",
        "HEARTH_LOG_LEVEL": "WARNING",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    env.pop("HEARTH_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 60, what="server readiness", every=0.1)
    except AssertionError:
        process.kill()
        raise
    return process


def _documents(base: str, headers: dict) -> list[dict]:
    return httpx.get(
        f"{base}/api/rag/collections/big/documents", params={"limit": 1000}, headers=headers, timeout=30
    ).json()


def test_kill_9_during_ingest_then_restart(tmp_path: Path):
    data_dir = tmp_path / "data"
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"include_defaults": False, **EMBED_ONLY}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start(data_dir, config, port)
    try:
        headers = {"Authorization": f"Bearer {(data_dir / 'admin-key.txt').read_text().strip()}"}
        httpx.post(f"{base}/api/rag/collections", json={"name": "big"}, headers=headers).raise_for_status()
        count = 60
        bodies = [
            # ~450 words: three to four chunks each, so a batch takes a noticeable time to embed.
            {
                "text": " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] + str(j % 50) for j in range(450)),
                "source": f"doc{i}.txt",
                "title": f"Document {i}",
            }
            for i in range(count)
        ]
        # Half in one bulk request (the CLI's path), half one request each.
        r = httpx.post(
            f"{base}/api/rag/collections/big/documents/batch",
            json={"documents": bodies[: count // 2]},
            headers=headers,
        )
        assert r.status_code == 202 and r.json()["queued"] == count // 2, r.text
        for body in bodies[count // 2 :]:
            r = httpx.post(f"{base}/api/rag/collections/big/documents", json=body, headers=headers)
            assert r.status_code == 202, r.text

        def first_indexed() -> list[str] | None:
            statuses = [d["status"] for d in _documents(base, headers)]
            return statuses if "indexed" in statuses else None

        statuses = wait_until(first_indexed, 120, what="a first indexed document", every=0.05)
        assert statuses.count("indexed") < count, "ingest finished before the kill: make it larger"
        server.send_signal(signal.SIGKILL)
        server.wait(10)

        server = _start(data_dir, config, port)

        def settled() -> list[dict] | None:
            docs = _documents(base, headers)
            return docs if docs and all(d["status"] in ("indexed", "failed") for d in docs) else None

        docs = wait_until(settled, 240, what="ingestion after the restart", every=0.2)
        assert len(docs) == count
        assert all(d["status"] == "indexed" for d in docs), [
            d["error"] for d in docs if d["status"] != "indexed"
        ]
        # Queries still work and see each document once.
        r = httpx.post(
            f"{base}/api/rag/query",
            json={
                "collection": "big",
                "query": "flutter buffet",
                "generate": False,
                "top_k": 50,
                "top_n": 50,
            },
            headers=headers,
            # The first query after a restart opens the indexes and loads models: slow on a loaded machine.
            timeout=60,
        ).json()
        chunk_ids = [s["chunk_id"] for s in r["sources"]]
        assert len(chunk_ids) == len(set(chunk_ids)) > 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)

    # Against the files themselves: every chunk in the vector store and the BM25 index belongs to an active
    # version, and every document's chunk count is exactly what was indexed once.
    with sqlite3.connect(data_dir / "hearth.db") as conn:
        collection_id = conn.execute("SELECT id FROM rag_collections WHERE name = 'big'").fetchone()[0]
        active = dict(conn.execute("SELECT id, active_version FROM rag_documents").fetchall())
        chunk_counts = dict(conn.execute("SELECT id, chunk_count FROM rag_documents").fetchall())
    versions = LanceStore(data_dir / "rag" / "lancedb").versions(collection_id)
    assert {d: v for d, v in versions} == active
    assert len(versions) == count
    assert all(versions[(d, v)] == chunk_counts[d] for d, v in versions)
    bm25 = KeywordIndex(data_dir / "rag" / "bm25")._load(collection_id)
    assert bm25 is not None and len(bm25.chunk_ids) == sum(chunk_counts.values())
    assert {(str(d), v) for d, v in zip(bm25.document_ids, bm25.versions, strict=True)} == set(active.items())
