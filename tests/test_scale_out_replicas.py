"""Three `hearth serve` replicas behind nginx on PostgreSQL, Redis and NATS JetStream (issue 19): one rate
limit for all of them, a revoked key refused by all within a second, 300 documents each indexed exactly once
and searchable through every replica, a SIGTERMed replica finishing its streams, and the jobs of a SIGKILLed
replica finished by another.

The vector store is LanceDB in the replicas' shared home (no Qdrant server runs here); index writes of a
collection are serialised across replicas by a PostgreSQL advisory lock (rag/indexes.py)."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import lance
import psycopg
import yaml

from tests.conftest import NATS_URL, POSTGRES_DSN, REDIS_URL, postgres_url
from tests.fake_openai import FakeOpenAI
from tests.harness import rag_config
from tests.helpers import wait_until
from tests.scale_helpers import Cluster, cluster

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
WORDS = ["river", "stone", "lantern", "orchard", "copper", "meadow", "harbor", "violet", "thunder", "saddle"]


def test_three_replicas_behind_nginx(tmp_path, postgres_schema, prefix) -> None:
    upstream = FakeOpenAI().start()
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump(rag_config(upstream.url)))
    try:
        with cluster(
            tmp_path,
            config_file=str(config),
            database_url=postgres_url(postgres_schema),
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            nats_url=NATS_URL,
            nats_prefix=prefix,
            # Keys stay cached for 30 s: only the broadcast can explain a refusal within a second.
            auth_cache_seconds="30",
            lease_seconds="3",
            shutdown_drain_seconds="2",
            shutdown_grace_seconds="30",
            rag_worker_batch="16",  # small batches spread the jobs over the replicas
        ) as hearth:
            admin = hearth.headers()
            one_rate_limit_for_all_replicas(hearth, admin)
            revoked_key_refused_by_every_replica(hearth, admin)
            collection_id = three_hundred_documents_indexed_once(hearth, admin, postgres_schema)
            sigterm_lets_streams_finish(hearth, upstream)
            sigkill_mid_ingest_loses_no_job(hearth, admin, postgres_schema, collection_id)
    finally:
        upstream.stop()


def one_rate_limit_for_all_replicas(hearth: Cluster, admin: dict[str, str]) -> None:
    r = httpx.post(f"{hearth.balancer}/api/admin/users", json={"username": "limited"}, headers=admin)
    assert r.status_code == 201, r.text
    limited = {"user": "limited", "rpm_limit": 60}
    r = httpx.post(f"{hearth.balancer}/api/admin/keys", json=limited, headers=admin)
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]

    def call(_: int) -> tuple[int, str]:
        reply = httpx.post(f"{hearth.balancer}/v1/chat/completions", json=CHAT, headers=hearth.headers(key))
        return reply.status_code, reply.headers.get("x-hearth-upstream", "")

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(120)))
    elapsed = time.monotonic() - started
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {200, 429}, statuses
    served_by = {upstream for status, upstream in results if status == 200}
    assert len(served_by) == 3, served_by  # every replica answered some
    # 60 per minute across the three, not 180: the bucket refills one request a second meanwhile.
    assert 60 <= statuses[200] <= 60 + int(elapsed) + 1, (statuses, elapsed)

    # Each replica publishes its usage through the outbox and NATS; the ledger, fed by one durable consumer
    # shared by the replicas, counts every answered request once: none lost, none counted twice.
    def counted() -> int:
        report = httpx.get(f"{hearth.balancer}/api/admin/usage", params={"key_id": key_id}, headers=admin)
        return report.json()["totals"]["requests"]

    wait_until(lambda: counted() >= statuses[200], 30, what="the usage ledger caught up", every=0.5)
    assert counted() == statuses[200]


def revoked_key_refused_by_every_replica(hearth: Cluster, admin: dict[str, str]) -> None:
    r = httpx.post(f"{hearth.balancer}/api/admin/keys", json={"user": "limited"}, headers=admin)
    key, key_id = r.json()["key"], r.json()["id"]
    for replica in hearth.replicas:  # each replica has the key in its cache now (for 30 s)
        assert httpx.get(f"{replica.url}/v1/models", headers=hearth.headers(key)).status_code == 200
    first, others = hearth.replicas[0], hearth.replicas[1:]
    r = httpx.delete(f"{first.url}/api/admin/keys/{key_id}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    revoked_at = time.monotonic()

    def refused_everywhere() -> bool:
        return all(
            httpx.get(f"{replica.url}/v1/models", headers=hearth.headers(key)).status_code == 401
            for replica in others
        )

    wait_until(refused_everywhere, 1.0, what="the revoked key refused by every replica", every=0.02)
    print(f"revoked key refused everywhere after {time.monotonic() - revoked_at:.3f} s")


def three_hundred_documents_indexed_once(hearth: Cluster, admin: dict[str, str], schema: str) -> str:
    r = httpx.post(f"{hearth.balancer}/api/rag/collections", json={"name": "scale"}, headers=admin)
    assert r.status_code == 201, r.text
    collection_id = r.json()["id"]
    count = 300
    docs = [
        {"text": f"Note {i} mentions kw{i:03d}q near the {WORDS[i % 10]} and the {WORDS[(i * 3) % 10]}.",
         "source": f"note{i}.txt"}
        for i in range(count)
    ]  # fmt: skip
    for start in range(0, count, 30):  # ten requests, spread over the replicas by nginx
        r = httpx.post(
            f"{hearth.balancer}/api/rag/collections/scale/documents/batch",
            json={"documents": docs[start : start + 30]},
            headers=admin,
            timeout=60,
        )
        assert r.status_code == 202 and r.json()["queued"] == 30, r.text

    def all_indexed() -> list[dict] | None:
        listed = httpx.get(
            f"{hearth.balancer}/api/rag/collections/scale/documents?limit=1000", headers=admin, timeout=30
        ).json()
        return listed if all(d["status"] in ("indexed", "failed") for d in listed) else None

    listed = wait_until(all_indexed, 120, what="300 documents indexed", every=0.5)
    assert len(listed) == count and all(d["status"] == "indexed" for d in listed)
    by_source = {d["source"]: d["id"] for d in listed}

    with psycopg.connect(POSTGRES_DSN) as conn:
        jobs = conn.execute(
            f'SELECT document_id, status, attempts, lease_owner FROM "{schema}".rag_jobs'
        ).fetchall()
    assert len(jobs) == count and len({j[0] for j in jobs}) == count  # one job per document
    assert {(status, attempts) for _, status, attempts, _ in jobs} == {("indexed", 1)}  # each claimed once
    workers = Counter(owner for *_, owner in jobs)
    print(f"jobs indexed per replica: {sorted(workers.values())}")
    assert_each_document_once(hearth, collection_id, listed)

    for replica in hearth.replicas:  # every replica finds documents it may never have written
        for i in (0, 123, 299):
            r = httpx.post(
                f"{replica.url}/api/rag/query",
                json={"collection": "scale", "query": f"kw{i:03d}q", "generate": False, "top_n": 1},
                headers=admin,
                timeout=60,
            )
            assert r.status_code == 200, r.text
            assert r.json()["sources"][0]["document_id"] == by_source[f"note{i}.txt"]
    return collection_id


def assert_each_document_once(hearth: Cluster, collection_id: str, listed: list[dict]) -> None:
    """The shared LanceDB table holds each document's chunks once, all of its active version."""
    table = lance.dataset(str(hearth.home / "rag" / "lancedb" / f"c_{collection_id}.lance"))
    rows = table.to_table(columns=["document_id", "version", "position"]).to_pylist()
    positions = Counter((row["document_id"], row["position"]) for row in rows)
    assert max(positions.values()) == 1, [key for key, n in positions.items() if n > 1][:5]
    per_document = Counter(row["document_id"] for row in rows)
    for document in listed:
        assert per_document[document["id"]] == document["chunk_count"] > 0, document


def sigterm_lets_streams_finish(hearth: Cluster, upstream: FakeOpenAI) -> None:
    upstream.behaviour.stream_chunks = 30
    upstream.behaviour.chunk_delay = 0.1  # three-second streams
    replica = hearth.replicas[1]
    body = {**CHAT, "stream": True}
    results: list[list[str]] = []

    def stream() -> None:
        pieces: list[str] = []
        with httpx.stream(
            "POST", f"{replica.url}/v1/chat/completions", json=body, headers=hearth.headers(), timeout=60
        ) as response:
            assert response.status_code == 200
            pieces.extend(line for line in response.iter_lines() if line.startswith("data:"))
        results.append(pieces)

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: upstream.stats.active_streams == 3, 30, what="three streams under way")
    replica.process.send_signal(signal.SIGTERM)
    # Out of the balancer's rotation first, while still serving.
    wait_until(
        lambda: httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 503, 2, what="draining readyz"
    )
    assert httpx.get(f"{replica.url}/readyz").json()["status"] == "draining"
    for thread in threads:
        thread.join(60)
    replica.process.wait(60)
    upstream.behaviour.stream_chunks, upstream.behaviour.chunk_delay = 5, 0.0
    assert len(results) == 3
    for pieces in results:  # every chunk and the end marker arrived
        assert pieces[-1] == "data: [DONE]" and len(pieces) >= 31, pieces[-3:]


def sigkill_mid_ingest_loses_no_job(
    hearth: Cluster, admin: dict[str, str], schema: str, collection_id: str
) -> None:
    survivor, victim = hearth.replicas[0], hearth.replicas[2]
    # Only the victim's worker may claim the new jobs: the survivor is paused until the victim is killed.
    survivor.process.send_signal(signal.SIGSTOP)
    try:
        docs = [
            {
                # ~300 words: a few chunks each, so a batch takes a moment to embed.
                "text": " ".join(f"{WORDS[(i + j) % 10]}{j % 40}" for j in range(300)),
                "source": f"long{i}.txt",
            }
            for i in range(32)
        ]
        r = httpx.post(
            f"{victim.url}/api/rag/collections/scale/documents/batch",
            json={"documents": docs},
            headers=admin,
            timeout=60,
        )
        assert r.status_code == 202, r.text

        def victim_holds_jobs() -> bool:
            with psycopg.connect(POSTGRES_DSN) as conn:
                held = conn.execute(
                    f'SELECT count(*) FROM "{schema}".rag_jobs WHERE lease_owner LIKE %s '
                    "AND status IN ('extracting', 'embedding')",
                    (f"%-{victim.pid}-%",),
                ).fetchone()
            return bool(held and held[0])

        wait_until(victim_holds_jobs, 60, what="the victim working on jobs", every=0.02)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
    finally:
        survivor.process.send_signal(signal.SIGCONT)

    def settled() -> list[dict] | None:
        listed = httpx.get(
            f"{survivor.url}/api/rag/collections/scale/documents?limit=1000", headers=admin, timeout=30
        ).json()
        return listed if all(d["status"] in ("indexed", "failed") for d in listed) else None

    listed = wait_until(settled, 120, what="the killed replica's jobs finished by another", every=0.5)
    assert len(listed) == 332 and all(d["status"] == "indexed" for d in listed)
    with psycopg.connect(POSTGRES_DSN) as conn:
        taken_over = conn.execute(
            f'SELECT count(*) FROM "{schema}".rag_jobs WHERE attempts = 2 AND lease_owner NOT LIKE %s',
            (f"%-{victim.pid}-%",),
        ).fetchone()
    assert taken_over and taken_over[0] > 0  # the survivor took the victim's claimed jobs over
    assert_each_document_once(hearth, collection_id, listed)
