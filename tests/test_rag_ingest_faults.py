"""Ingestion under faults (issue 20, rows 1 and 3), on a real server whose embedder is a fake
OpenAI-compatible upstream on loopback: one document the embedder refuses fails alone, after bounded
retries, while the rest of its worker batch is indexed; deleting a collection or a document while it is
being embedded stops the work and leaves nothing of it behind."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.fake_openai import Behaviour, FakeOpenAI
from tests.harness import run_hearth
from tests.helpers import wait_indexed, wait_until


@pytest.fixture
def upstream():
    fake = FakeOpenAI(Behaviour()).start()
    yield fake
    fake.stop()


def _config(url: str) -> dict:
    return {
        "include_defaults": False,
        "backends": {"up": {"type": "openai", "base_url": url}},
        "aliases": {
            "embedder": {"kind": "embedding", "deployments": [{"backend": "up", "model": "m"}]},
            "reranker": {"kind": "rerank", "deployments": [{"backend": "up", "model": "m"}]},
        },
    }


def _embedded(fake: FakeOpenAI, marker: str) -> int:
    """Embedding requests the upstream received with an input containing `marker`."""
    return sum(
        1
        for body in list(fake.stats.bodies)
        if isinstance(body.get("input"), list) and any(marker in t for t in body["input"])
    )


def test_a_document_the_embedder_refuses_fails_alone_after_bounded_retries(upstream, tmp_path: Path):
    """Issue 20, row 1: before, one refused document failed (on other errors: stranded) its whole batch."""
    upstream.behaviour.refuse_input = "POISON"
    with run_hearth(tmp_path, _config(upstream.url)) as hearth:
        h = hearth.headers()
        httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "mix"}, headers=h).raise_for_status()
        texts = [
            "Flutter couples aerodynamic forces with elastic modes of a wing.",
            "Suction through a porous wall delays boundary layer separation.",
            "This one carries the POISON word that the embedder refuses.",
            "Heat conduction in composite slabs with contact resistance.",
            "Shock tubes measure chemical reaction rates behind the shock.",
        ]
        docs = [{"text": t, "source": f"{i}.txt"} for i, t in enumerate(texts)]
        r = httpx.post(
            f"{hearth.url}/api/rag/collections/mix/documents/batch", json={"documents": docs}, headers=h
        )
        assert r.status_code == 202, r.text  # one request: one worker batch
        listed = {d["source"]: d for d in wait_indexed(hearth, "mix", 5)}
        assert {s: d["status"] for s, d in listed.items()} == {
            "0.txt": "indexed",
            "1.txt": "indexed",
            "2.txt": "failed",
            "3.txt": "indexed",
            "4.txt": "indexed",
        }
        assert all(listed[s]["chunk_count"] == 1 for s in ("0.txt", "1.txt", "3.txt", "4.txt"))
        bad = listed["2.txt"]
        assert "embedding failed" in bad["error"] and "gave up after 3 attempts" in bad["error"]
        assert "refuses this input" in bad["error"]
        job = httpx.get(f"{hearth.url}/api/rag/jobs/{bad['job_id']}", headers=h).json()
        assert job["status"] == "failed" and job["error"] == bad["error"]
        # Retried, but boundedly: three attempts, each the batch's call and/or the document's own call.
        assert 3 <= _embedded(upstream, "POISON") <= 6
        query = {"collection": "mix", "query": "porous wall suction", "mode": "sparse", "generate": False}
        sources = httpx.post(f"{hearth.url}/api/rag/query", json={**query, "rerank": False}, headers=h)
        assert sources.json()["sources"][0]["metadata"]["source"] == "1.txt"


def _big_text(marker: str, words: int = 200_000) -> str:
    vocabulary = ["nozzle", "throat", "shock", "plume", "inlet", "ramp", "bleed", "duct", marker]
    return " ".join(vocabulary[i % len(vocabulary)] + str(i % 97) for i in range(words))


@pytest.mark.parametrize("target", ["collection", "document"])
def test_deleting_while_embedding_stops_the_work_and_leaves_nothing(upstream, tmp_path: Path, target: str):
    """Issue 20, row 3: before, deleting a collection (204) left its 10 MB document embedding for minutes."""
    hold = threading.Event()
    try:
        with run_hearth(tmp_path, _config(upstream.url)) as hearth:
            upstream.behaviour.hold = hold  # the embedder answers only once the deletion was made
            h = hearth.headers()
            base = f"{hearth.url}/api/rag"
            created = httpx.post(f"{base}/collections", json={"name": "big"}, headers=h)
            collection_id = created.json()["id"]
            httpx.post(f"{base}/collections", json={"name": "after"}, headers=h).raise_for_status()
            posted = httpx.post(
                f"{base}/collections/big/documents",
                json={"text": _big_text("zephyr"), "source": "big.txt"},
                headers=h,
                timeout=60,
            )
            assert posted.status_code == 202, posted.text
            document, job = posted.json()["document"], posted.json()["job"]
            # Its first embedding call is in flight: the document is being embedded.
            wait_until(lambda: _embedded(upstream, "zephyr") >= 1, 60, what="embedding started")
            doc = httpx.get(f"{base}/documents/{document['id']}", headers=h).json()
            assert doc["status"] == "embedding"
            path = "collections/big" if target == "collection" else f"documents/{document['id']}"
            assert httpx.delete(f"{base}/{path}", headers=h).status_code == 204
            hold.set()
            # The worker takes jobs in order: once a later document is indexed, it has left the big one.
            after = {"text": "Afterburners add thrust.", "source": "after.txt"}
            httpx.post(f"{base}/collections/after/documents", json=after, headers=h).raise_for_status()
            assert [d["status"] for d in wait_indexed(hearth, "after", 1)] == ["indexed"]
            # ~1,600 chunks needed 13 embedding calls; the one in flight at the deletion was the last.
            assert _embedded(upstream, "zephyr") == 1
            assert httpx.get(f"{base}/documents/{document['id']}", headers=h).status_code == 404
            assert httpx.get(f"{base}/jobs/{job['id']}", headers=h).status_code == 404
            data = Path(hearth.settings.data_dir) / "rag"
            assert list((data / "uploads").iterdir()) == []
            assert not (data / "lancedb" / f"c_{collection_id}.lance").exists()  # no chunk was written
            assert not (data / "bm25" / collection_id).exists()
            if target == "document":
                listed = httpx.get(f"{base}/collections/big/documents", headers=h).json()
                assert listed == []
    finally:
        hold.set()


def test_a_document_replaced_while_embedding_stops_the_old_version(upstream, tmp_path: Path):
    """The old version's remaining chunks are not embedded; its job ends failed as superseded (not stuck
    "embedding", which would keep the queue busy forever) and the new version is indexed."""
    hold = threading.Event()
    try:
        with run_hearth(tmp_path, _config(upstream.url)) as hearth:
            upstream.behaviour.hold = hold
            h = hearth.headers()
            url = f"{hearth.url}/api/rag/collections/docs/documents"
            httpx.post(
                f"{hearth.url}/api/rag/collections", json={"name": "docs"}, headers=h
            ).raise_for_status()
            old = httpx.post(
                url, json={"text": _big_text("zephyr"), "source": "d.txt"}, headers=h, timeout=60
            )
            assert old.status_code == 202, old.text
            wait_until(lambda: _embedded(upstream, "zephyr") >= 1, 60, what="embedding started")
            new = httpx.post(
                url, json={"text": "Scramjets burn at supersonic speed.", "source": "d.txt"}, headers=h
            )
            assert new.status_code == 202 and new.json()["document"]["id"] == old.json()["document"]["id"]
            hold.set()
            [doc] = wait_indexed(hearth, "docs", 1)
            assert doc["status"] == "indexed" and doc["job_id"] == new.json()["job"]["id"]
            assert doc["chunk_count"] == 1
            stale = httpx.get(f"{hearth.url}/api/rag/jobs/{old.json()['job']['id']}", headers=h).json()
            assert stale["status"] == "failed" and stale["error"] == "superseded by a newer version"
            assert _embedded(upstream, "zephyr") == 1
            assert list((Path(hearth.settings.data_dir) / "rag" / "uploads").iterdir()) == []
    finally:
        hold.set()
