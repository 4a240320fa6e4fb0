"""RAG answers are grounded or replaced: an answer that cites nothing, or whose words are not in the sources
it cites, gives way to the sources' best sentences with [n] citations, and the response says so
(answer_mode, answer_note); cited sources come with their file names. Through /api/rag/query (whole and
streamed), a RAG chat turn and `hearth ask`, with a fake upstream that answers badly, and once with the
embedded model."""

from __future__ import annotations

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.fake_openai import FakeOpenAI
from tests.harness import run_hearth
from tests.helpers import wait_until

QUESTION = "What should the boiler pressure read?"
GROUNDED = "The boiler pressure should read 1.5 bar [1]."
INVENTED = "The boiler pressure is set by the atmosphere of the Moon."  # no citation, nothing from the source
OFF_TOPIC = "Penguins live in Antarctica and eat fish all winter [1]."  # a citation, but not its words


def _config(upstream_url: str | None) -> dict:
    backends = {
        "local-embed": {"type": "onnx_embedding"},
        "local-rerank": {"type": "embedding_rerank", "embedder": "local-embed"},
    }
    chat = {"backend": "local-llm"}
    if upstream_url is not None:
        backends["up0"] = {"type": "openai", "base_url": upstream_url}
        chat = {"backend": "up0", "model": "m0"}
    else:
        backends["local-llm"] = {"type": "llama_cpp", "n_ctx": 2048}
    return {
        "include_defaults": False,
        "backends": backends,
        "aliases": {
            "chat": {"kind": "chat", "deployments": [chat]},
            "embedder": {"kind": "embedding", "deployments": [{"backend": "local-embed"}]},
            "reranker": {"kind": "rerank", "deployments": [{"backend": "local-rerank"}]},
        },
    }


def _load(hearth) -> None:
    h = hearth.headers()
    assert (
        httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "home"}, headers=h).status_code == 201
    )
    documents = [
        {
            "title": "Boiler manual",
            "source": "boiler-manual.md",
            "text": "Bleed the radiators every autumn before the heating season starts. "
            "The boiler pressure should read 1.5 bar when the system is cold. "
            "Call an engineer if the pressure drops below one bar twice in a week.",
        },
        {
            "title": "Garden notes",
            "source": "garden.txt",
            "text": "Tomatoes need watering every morning in July and August. Feed them weekly.",
        },
    ]
    r = httpx.post(
        f"{hearth.url}/api/rag/collections/home/documents/batch",
        json={"documents": documents},
        headers=h,
        timeout=60,
    )
    assert r.status_code == 202, r.text
    jobs = [item["job"]["id"] for item in r.json()["items"]]

    def indexed() -> bool:
        states = [httpx.get(f"{hearth.url}/api/rag/jobs/{j}", headers=h).json()["status"] for j in jobs]
        assert "failed" not in states
        return all(s == "indexed" for s in states)

    wait_until(indexed, 60, what="ingestion", every=0.1)


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):
    upstream = FakeOpenAI().start()
    with run_hearth(tmp_path_factory.mktemp("grounding"), _config(upstream.url)) as server:
        server.upstream = upstream  # type: ignore[attr-defined]
        _load(server)
        yield server
    upstream.stop()


def _query(hearth, **extra) -> httpx.Response:
    body = {"collection": "home", "query": QUESTION, "top_n": 2, **extra}
    return httpx.post(f"{hearth.url}/api/rag/query", json=body, headers=hearth.headers(), timeout=60)


def test_a_grounded_answer_is_kept_with_its_cited_file(hearth):
    hearth.upstream.behaviour.reply = GROUNDED
    result = _query(hearth).json()
    assert result["answer"] == GROUNDED
    assert result["answer_mode"] == "generated" and result["answer_note"] is None
    assert [(c["n"], c["file"]) for c in result["citations"]] == [(1, "boiler-manual.md")]
    assert result["deployment"] == "up0/m0" and result["fallback"] is None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [(INVENTED, "cites no source"), (OFF_TOPIC, "of the answer's words appear"), ("", "no answer")],
)
def test_an_ungrounded_answer_gives_way_to_the_sources_sentences(hearth, reply, reason):
    hearth.upstream.behaviour.reply = reply
    result = _query(hearth).json()
    assert result["answer_mode"] == "extractive_fallback" and reason in result["answer_note"]
    assert "The boiler pressure should read 1.5 bar when the system is cold. [1]" in result["answer"]
    assert "Moon" not in result["answer"] and "Penguins" not in result["answer"]
    assert result["citations"][0]["file"] == "boiler-manual.md"


def test_a_streamed_answer_is_checked_at_the_end(hearth):
    hearth.upstream.behaviour.stream_text = INVENTED
    try:
        events = []
        with httpx.stream(
            "POST",
            f"{hearth.url}/api/rag/query",
            json={"collection": "home", "query": QUESTION, "top_n": 2, "stream": True},
            headers=hearth.headers(),
            timeout=60,
        ) as response:
            assert response.status_code == 200
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, orjson.loads(line[6:])))
    finally:
        hearth.upstream.behaviour.stream_text = None
    deltas = "".join(e["delta"] for n, e in events if n == "delta")
    assert "Moon" in deltas  # the model's words went out as they came…
    done = next(e for n, e in events if n == "done")
    assert done["answer_mode"] == "extractive_fallback"  # …and the final answer says they were replaced
    assert "1.5 bar" in done["answer"] and "[1]" in done["answer"]
    assert done["citations"][0]["file"] == "boiler-manual.md"


def test_a_rag_chat_turn_stores_the_extractive_answer(hearth):
    hearth.upstream.behaviour.stream_text = INVENTED
    try:
        events = []
        with httpx.stream(
            "POST",
            f"{hearth.url}/api/conversations",
            json={"content": QUESTION, "rag": True, "collection": "home"},
            headers=hearth.headers(),
            timeout=60,
        ) as response:
            assert response.status_code == 201
            events = [orjson.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    finally:
        hearth.upstream.behaviour.stream_text = None
    replaced = next(e for e in events if e["type"] == "extractive_fallback")
    assert "cites no source" in replaced["reason"] and "1.5 bar" in replaced["content"]
    assert events[0]["sources"][0]["file"] == "boiler-manual.md"
    message = next(e for e in events if e["type"] == "message")["assistant"]
    assert message["content"] == replaced["content"]  # what is stored and shown again later
    assert message["metadata"]["answer_mode"] == "extractive_fallback"
    assert message["metadata"]["generated_text"] == INVENTED


def test_hearth_ask_says_when_the_answer_is_extractive(hearth):
    hearth.upstream.behaviour.reply = INVENTED
    result = CliRunner().invoke(
        cli, ["ask", QUESTION, "-c", "home", "--url", hearth.url, "--api-key", hearth.admin_key]
    )
    assert result.exit_code == 0, result.output
    assert "not grounded in the sources" in result.output
    assert "1.5 bar when the system is cold. [1]" in result.output
    assert "boiler-manual.md" in result.output


def test_the_embedded_model_always_answers_with_citations(tmp_path):
    with run_hearth(tmp_path, _config(None)) as hearth:
        _load(hearth)
        result = _query(hearth, max_tokens=80).json()
        # The model behind the alias is named, and said plainly to be a demo model.
        card = httpx.get(f"{hearth.v1}/models/chat", headers=hearth.headers()).json()
        (llm,) = card["deployment_details"]
        assert "SmolLM2" in llm["model"] and llm["engine"] == "llama.cpp (embedded)" and llm["demo"] is True
        assert "135M" in card["note"] and "hearth models add backend" in card["note"]
        embedder = httpx.get(f"{hearth.v1}/models/embedder", headers=hearth.headers()).json()
        assert "all-MiniLM-L6-v2" in embedder["deployment_details"][0]["model"] and "note" not in embedder
        listing = CliRunner().invoke(
            cli, ["models", "--url", hearth.url, "--api-key", hearth.admin_key], env={"COLUMNS": "250"}
        )
        assert listing.exit_code == 0 and "135M-parameter demo model" in listing.output
    # Grounded or not, the answer cites its sources by number, and each citation names its file.
    assert result["answer_mode"] in ("generated", "extractive_fallback")
    assert result["citations"] and all(
        c["file"] in ("boiler-manual.md", "garden.txt") for c in result["citations"]
    )
    assert f"[{result['citations'][0]['n']}]" in result["answer"]
