"""The RAG HTTP API and CLI on a real server: uploads of every format, bad input over HTTP (413, 415, 400,
404), queries with per-stage latency, cited answers (fake upstream: deterministic; embedded SmolLM2: once),
SSE streaming, and `hearth ingest` / `hearth ask` / `hearth rag load|eval`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.fake_openai import Behaviour, FakeOpenAI
from tests.harness import run_hearth
from tests.helpers import wait_indexed
from tests.test_rag_files import make_docx, make_pdf
from tests.test_rag_service import EMBED_ONLY

CORPUS = """.I 1
.T
flutter of wings
.W
flutter of wings is a self-excited aeroelastic oscillation that grows when the torsional stiffness is low .
.I 2
.T
heat conduction in slabs
.W
heat conduction in composite slabs is solved for layered materials with contact resistance .
.I 3
.T
boundary layer suction
.W
suction through a porous wall delays the separation of the turbulent boundary layer .
"""
QUERIES = ".I 001\n.W\nwhat makes a wing flutter .\n.I 002\n.W\nconduction of heat in composite slabs .\n"
QRELS = "1 1 1\n2 2 2\n2 3 -1\n"


@pytest.fixture(scope="module")
def upstream():
    server = FakeOpenAI(
        Behaviour(reply="Flutter couples aerodynamics with elastic modes [1], see also [7] and [1, 9].")
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hearth(tmp_path_factory, upstream):
    config = {
        "include_defaults": False,
        "backends": {**EMBED_ONLY["backends"], "up": {"type": "openai", "base_url": upstream.url}},
        "aliases": {
            **EMBED_ONLY["aliases"],
            "chat": {"kind": "chat", "deployments": [{"backend": "up", "model": "m"}]},
        },
    }
    with run_hearth(tmp_path_factory.mktemp("rag-api"), config, max_upload_bytes=2 * 1024 * 1024) as server:
        yield server


@pytest.fixture(scope="module")
def bob(hearth):
    assert httpx.post(
        f"{hearth.url}/api/admin/users", json={"username": "bob"}, headers=hearth.headers()
    ).is_success
    key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "bob"}, headers=hearth.headers()).json()[
        "key"
    ]
    return hearth.headers(key)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]


def test_upload_every_format_then_query_with_latency(hearth, bob):
    h = hearth.headers()
    created = httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "formats"}, headers=h)
    assert created.status_code == 201
    files = {
        "notes.txt": b"Plain text about compressor surge margins.",
        "readme.md": b"# Markdown\n\nIcing on rotor blades changes their lift.",
        "page.html": b"<html><title>Web</title><body><p>Sonic booms reach the ground as N-waves.</p></html>",
        "paper.pdf": make_pdf(["Page one: intro.", "Page two: shock tubes measure reaction rates."]),
        "report.docx": make_docx(["Wind tunnels calibrate turbulence screens."]),
    }
    for name, data in files.items():
        r = httpx.post(
            f"{hearth.url}/api/rag/collections/formats/documents",
            files={"file": (name, data)},
            data={"metadata": orjson.dumps({"kind": name.split(".")[1]}).decode()},
            headers=h,
        )
        assert r.status_code == 202, r.text
        assert r.json()["job"]["status"] == "pending"
    docs = wait_indexed(hearth, "formats", len(files))
    assert {d["status"] for d in docs} == {"indexed"}, docs
    job = httpx.get(f"{hearth.url}/api/rag/jobs/{docs[0]['job_id']}", headers=h).json()
    assert job["status"] == "indexed" and job["chunk_count"] >= 1

    body = {"collection": "formats", "query": "shock tube reaction rates", "generate": False}
    result = httpx.post(f"{hearth.url}/api/rag/query", json=body, headers=h).json()
    top = result["sources"][0]
    assert top["metadata"]["source"] == "paper.pdf" and top["metadata"]["page"] == 2
    assert set(top) == {"chunk_id", "document_id", "title", "text", "score", "rerank_score", "metadata"}
    assert result["answer"] is None and len(result["sources"]) == 3 and result["mode"] == "hybrid"
    assert set(result["latency_ms"]) >= {"embed", "search", "rerank", "generate", "total"}
    assert result["latency_ms"]["search"] > 0 and result["latency_ms"]["generate"] == 0
    filtered = httpx.post(
        f"{hearth.url}/api/rag/query", json={**body, "filters": {"kind": "docx"}, "mode": "dense"}, headers=h
    ).json()
    assert [s["metadata"]["source"] for s in filtered["sources"]] == ["report.docx"]
    # Another user sees nothing of it.
    assert httpx.post(f"{hearth.url}/api/rag/query", json=body, headers=bob).status_code == 404
    doc_id = top["document_id"]
    assert httpx.get(f"{hearth.url}/api/rag/documents/{doc_id}", headers=bob).status_code == 404
    assert httpx.delete(f"{hearth.url}/api/rag/documents/{doc_id}", headers=bob).status_code == 404
    assert httpx.delete(f"{hearth.url}/api/rag/documents/{doc_id}", headers=h).status_code == 204
    again = httpx.post(f"{hearth.url}/api/rag/query", json=body, headers=h).json()
    assert all(s["document_id"] != doc_id for s in again["sources"])


def test_bad_input_over_http(hearth):
    h = hearth.headers()
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "bad"}, headers=h)
    url = f"{hearth.url}/api/rag/collections/bad/documents"
    big = b"a" * (3 * 1024 * 1024)  # over this server's 2 MiB upload cap
    assert "exceeds the limit" in _error(httpx.post(url, files={"file": ("big.txt", big)}, headers=h), 413)
    assert "unsupported" in _error(httpx.post(url, files={"file": ("x.exe", b"MZ")}, headers=h), 415)

    def chunked_multipart() -> Iterator[bytes]:  # no Content-Length: the limit is found while reading
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for _ in range(30):
            yield b"a" * 100_000
        yield b"\r\n--B--\r\n"

    chunked = httpx.post(
        url, content=chunked_multipart(), headers={**h, "Content-Type": "multipart/form-data; boundary=B"}
    )
    assert "exceeds the limit" in _error(chunked, 413)  # issue 20, row 6: was a vague 400
    assert "empty" in _error(httpx.post(url, files={"file": ("e.txt", b"")}, headers=h), 400)
    assert "'..'" in _error(httpx.post(url, files={"file": ("../../etc/passwd.txt", b"x")}, headers=h), 400)
    assert "NUL" in _error(
        httpx.post(url, files={"file": ("a.txt", b"x")}, data={"source": "a\x00b.txt"}, headers=h), 400
    )
    assert "missing" in _error(httpx.post(url, files={"attachment": ("a.txt", b"x")}, headers=h), 400)
    assert "not found" in _error(
        httpx.post(
            f"{hearth.url}/api/rag/collections/nope/documents", files={"file": ("a.txt", b"x")}, headers=h
        ),
        404,
    )
    assert "collection" in _error(
        httpx.post(f"{hearth.url}/api/rag/query", json={"collection": "nope", "query": "x"}, headers=h), 404
    )
    assert _error(httpx.post(f"{hearth.url}/api/rag/query", json={"collection": "bad"}, headers=h), 422)
    # Issue 20, row 3: a 10 MB text and a 10 MB metadata value were accepted.
    too_long = httpx.post(url, json={"text": "word " * 400_001, "source": "long.txt"}, headers=h)
    assert "at most 2000000 characters" in _error(too_long, 422)
    fat = httpx.post(url, json={"text": "x", "metadata": {"blob": "m" * 20_000}}, headers=h)
    assert "larger than 16384 bytes" in _error(fat, 422)
    past_bigint = httpx.get(url, params={"offset": 2**63}, headers=h)  # issue 20, row 4: was a 500
    assert "offset" in _error(past_bigint, 422)
    junk = httpx.post(url, files={"file": ("junk.txt", bytes(range(256)) * 8)}, headers=h)
    assert junk.status_code == 202
    docs = wait_indexed(hearth, "bad", 1)
    assert docs[0]["status"] == "failed" and "binary" in docs[0]["error"] and not docs[0]["queryable"]
    assert httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "bad"}, headers=h).status_code == 409


def test_answers_cite_only_returned_sources_and_stream(hearth):
    h = hearth.headers()
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "cite"}, headers=h)
    for i, text in enumerate(
        ["Flutter couples aerodynamics with elastic modes.", "Buffet is separated-flow shaking."]
    ):
        httpx.post(
            f"{hearth.url}/api/rag/collections/cite/documents",
            json={"text": text, "source": f"d{i}.txt"},
            headers=h,
        ).raise_for_status()
    wait_indexed(hearth, "cite", 2)
    body = {"collection": "cite", "query": "what is flutter", "top_n": 2}
    result = httpx.post(f"{hearth.url}/api/rag/query", json=body, headers=h).json()
    # The upstream cited [7] and [9], which do not exist: they are dropped, [1] kept.
    assert result["answer"] == "Flutter couples aerodynamics with elastic modes [1], see also and [1]."
    assert result["answer_mode"] == "generated" and result["citations"][0]["file"] == "d0.txt"
    assert len(result["sources"]) == 2 and result["latency_ms"]["generate"] > 0

    with httpx.stream("POST", f"{hearth.url}/api/rag/query", json={**body, "stream": True}, headers=h) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith(("event:", "data:"))]
    names = [e[7:] for e in events if e.startswith("event:")]
    payloads = [orjson.loads(e[6:]) for e in events if e.startswith("data:")]
    assert names[0] == "sources" and names[-1] == "done" and "delta" in names
    assert len(payloads[0]["sources"]) == 2
    assert payloads[1]["delta"].startswith("tok0") and payloads[-1]["latency_ms"]["generate"] > 0
    # "tok0 tok1 …" cites nothing: the final answer is the sources' own sentence instead.
    assert payloads[-1]["answer_mode"] == "extractive_fallback"
    assert payloads[-1]["answer"] == "Flutter couples aerodynamics with elastic modes. [1]"


def test_cli_ingest_ask_load_and_eval(hearth, tmp_path: Path):
    runner = CliRunner()
    auth = ["--url", hearth.url, "--api-key", hearth.admin_key]
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("Ramjets need forward speed before they produce thrust.")
    (folder / "sub" / "b.txt").write_text("Scramjets burn fuel in supersonic airflow.")
    (folder / "skip.bin").write_bytes(b"\0\1")
    result = runner.invoke(cli, ["ingest", str(folder), "--collection", "cli", *auth])
    assert result.exit_code == 0, result.output
    assert "2 indexed" in result.output
    again = runner.invoke(cli, ["ingest", str(folder), "--collection", "cli", *auth])
    assert again.exit_code == 0 and "2 unchanged" in again.output
    asked = runner.invoke(
        cli, ["ask", "supersonic combustion", "--collection", "cli", "--no-generate", *auth]
    )
    assert asked.exit_code == 0, asked.output
    assert "[1]" in asked.output and "docs/sub/b.txt" in asked.output
    missing = runner.invoke(cli, ["ask", "x", "--collection", "nope", *auth])
    assert missing.exit_code == 1 and "404" in missing.output

    (tmp_path / "corpus").write_text(CORPUS)
    (tmp_path / "queries").write_text(QUERIES)
    (tmp_path / "qrels").write_text(QRELS)
    loaded = runner.invoke(cli, ["rag", "load", str(tmp_path / "corpus"), "--collection", "mini", *auth])
    assert loaded.exit_code == 0 and "3 indexed" in loaded.output, loaded.output
    args = ["rag", "eval", "--collection", "mini", "--queries", str(tmp_path / "queries")]
    args += ["--qrels", str(tmp_path / "qrels"), "--format", "smart", "--json", *auth]
    evaluated = runner.invoke(cli, args)
    assert evaluated.exit_code == 0, evaluated.output
    scores = orjson.loads(evaluated.output.strip().splitlines()[-1])
    assert set(scores) == {"dense", "sparse", "hybrid"}
    for mode, s in scores.items():
        assert s["queries"] == 2 and s["recall100"] == 1.0, mode
        assert s["ndcg10"] == pytest.approx(1.0) and s["mrr10"] == 1.0, mode


@pytest.mark.slow
def test_answer_with_the_embedded_model(tmp_path):
    with run_hearth(tmp_path) as server:
        h = server.headers()
        httpx.post(f"{server.url}/api/rag/collections", json={"name": "llm"}, headers=h).raise_for_status()
        httpx.post(
            f"{server.url}/api/rag/collections/llm/documents",
            json={"text": "The Hearth test rig's wind tunnel runs at Mach 3.", "source": "rig.txt"},
            headers=h,
        ).raise_for_status()
        wait_indexed(server, "llm", 1)
        body = {
            "collection": "llm",
            "query": "What Mach number does the wind tunnel run at?",
            "max_tokens": 24,
        }
        result = httpx.post(f"{server.url}/api/rag/query", json=body, headers=h, timeout=120).json()
    assert result["answer"], result
    cited = [int(n) for n in __import__("re").findall(r"\[(\d+)\]", result["answer"])]
    assert all(1 <= n <= len(result["sources"]) for n in cited)
    assert result["sources"][0]["metadata"]["source"] == "rig.txt" and result["latency_ms"]["generate"] > 0
