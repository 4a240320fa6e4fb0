"""The research crew and the tool registry over real HTTP: researcher (real RAG search and the calculator
through the registry) → writer → reviewer with the bounded revision loop, every step's record, and tools
called directly with validated arguments."""

from __future__ import annotations

import httpx
import pytest

from tests.agents_helpers import Script, agents_config, ingest, nodes, run, stream_events
from tests.fake_openai import FakeOpenAI
from tests.harness import run_hearth
from tests.helpers import wait_indexed
from tests.serve_helpers import clean_env
from tests.serve_helpers import hearth as cli

DRAFT = "The boiler should read 1.5 bar [1]; twice that is 3 bar [2]."


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    script = Script()
    upstream.behaviour.script = script
    with run_hearth(tmp_path_factory.mktemp("agents-crew"), agents_config(upstream.url)) as server:
        server.script = script  # type: ignore[attr-defined]
        ingest(server, "home", "Boiler manual", "The boiler pressure should read 1.5 bar. Bleed radiators.")
        wait_indexed(server, "home", 1)
        yield server
    upstream.stop()


def test_crew_researches_with_tools_writes_and_is_approved(hearth) -> None:  # type: ignore[no-untyped-def]
    plan = (
        '[{"tool": "rag_search", "arguments": {"collection": "home", "query": "boiler pressure"}},'
        ' {"tool": "calculator", "arguments": {"expression": "1.5 * 2"}}]'
    )
    hearth.script.reset(plan=plan, write=DRAFT, review='{"verdict": "approve", "score": 88, "feedback": ""}')
    r = run(
        hearth,
        "crew",
        {"query": "What pressure should the boiler read, and twice that?", "collection": "home"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "completed" and nodes(body) == ["researcher", "writer", "reviewer", "finish"]
    result = body["result"]
    assert result["answer"] == DRAFT and result["approved"] and result["revisions"] == 0
    research = body["steps"][0]
    assert research["role"] == "researcher" and research["goal"]
    calls = research["tool_calls"]
    assert [c["tool"] for c in calls] == ["rag_search", "calculator"] and all(c["ok"] for c in calls)
    assert calls[0]["result"][0]["title"] == "Boiler manual" and calls[1]["result"]["value"] == 3
    # The writer saw the notes the tools produced.
    prompt = next(b for k, b in hearth.script.calls if k == "write")["messages"][-1]["content"]
    assert "1.5 bar" in prompt and '"value":3' in prompt
    for step in body["steps"][:3]:
        assert step["tokens"]["completion"] > 0 and step["latency_ms"] >= step["model_ms"] > 0
        assert step["input"] and step["output"]


def test_reviewer_sends_back_at_most_max_revisions_times(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(
        plan="[]", write=DRAFT, review='{"verdict": "revise", "score": 30, "feedback": "add units"}'
    )
    body = run(hearth, "crew", {"query": "Boiler pressure?", "collection": "home", "max_revisions": 2}).json()
    result = body["result"]
    assert not result["approved"] and result["revisions"] == 2
    assert nodes(body) == [
        "researcher",
        "writer",
        "reviewer",
        "writer",
        "reviewer",
        "writer",
        "reviewer",
        "finish",
    ]
    assert [r["verdict"] for r in result["reviews"]] == ["revise"] * 3
    assert result["reviews"][-1]["revision_limit_reached"]
    # The writer got the reviewer's feedback on each revision.
    writes = [b for k, b in hearth.script.calls if k == "write"]
    assert len(writes) == 3 and "add units" in writes[1]["messages"][-1]["content"]
    # Rules planned the research when the model planned nothing: the collection was searched.
    assert [c["tool"] for c in body["steps"][0]["tool_calls"]] == ["rag_search"]


def test_unusable_review_falls_back_to_signals(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(plan="no plan", write="", review="hmm")
    body = run(hearth, "crew", {"query": "Boiler pressure?", "collection": "home", "max_revisions": 1}).json()
    first = body["result"]["reviews"][0]
    assert first["reviewed_by"] == "signals" and first["verdict"] == "revise" and first["score"] == 0
    assert "empty" in first["feedback"] and body["result"]["revisions"] == 1


def test_crew_streams_tool_calls_and_tokens(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(
        plan='[{"tool": "calculator", "arguments": {"expression": "2 ** 10"}}]',
        write=DRAFT,
        review='{"verdict": "approve", "score": 90}',
    )
    events = stream_events(hearth, "/api/agents/crew", {"query": "What is 2 ** 10?", "stream": True})
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run" and kinds[-1] == "done"
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["tool"] == "calculator" and result["result"]["value"] == 1024
    assert "".join(e["content"] for e in events if e["type"] == "token") == DRAFT


def test_unknown_tools_are_refused(hearth) -> None:  # type: ignore[no-untyped-def]
    r = run(hearth, "crew", {"query": "x", "tools": ["calculator", "teleport"]})
    assert r.status_code == 400 and "teleport" in r.json()["error"]["message"]


def test_tools_are_listed_and_called_with_validated_arguments(hearth) -> None:  # type: ignore[no-untyped-def]
    tools = {
        t["name"]: t for t in httpx.get(f"{hearth.url}/api/agents/tools", headers=hearth.headers()).json()
    }
    assert {"rag_search", "document_fetch", "planner_predict", "bench_status", "calculator"} <= set(tools)
    assert tools["calculator"]["input_schema"]["required"] == ["expression"]

    def call(name: str, arguments: dict) -> httpx.Response:
        return httpx.post(
            f"{hearth.url}/api/agents/tools/{name}", json={"arguments": arguments}, headers=hearth.headers()
        )

    ok = call("calculator", {"expression": "(3 + 4) * 2 ** 3"}).json()
    assert ok["ok"] and ok["result"]["value"] == 56
    bad = call("calculator", {"expression": "__import__('os')"}).json()
    assert not bad["ok"] and "not allowed" in bad["error"]
    invalid = call("rag_search", {"collection": "home"})  # no query
    assert invalid.status_code == 422 and "query" in invalid.json()["error"]["message"]
    assert call("teleport", {}).status_code == 404
    found = call("rag_search", {"collection": "home", "query": "boiler"}).json()
    doc_id = found["result"][0]["document_id"]
    fetched = call("document_fetch", {"document_id": doc_id}).json()
    assert fetched["ok"] and fetched["result"]["title"] == "Boiler manual"
    status = call("bench_status", {"limit": 2}).json()
    assert status["ok"] and status["result"]["rows"] <= 2


def test_cli_crew(hearth, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(
        plan="[]", write=DRAFT, review='{"verdict": "revise", "score": 40, "feedback": "more"}'
    )
    done = cli(
        "crew",
        "Boiler pressure?",
        "--collection",
        "home",
        "--max-revisions",
        "1",
        "--url",
        hearth.url,
        "--api-key",
        hearth.admin_key,
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert DRAFT in done.stdout and "not approved (revision limit reached) after 1 revision(s)" in done.stdout
    assert done.stderr.count("[reviewer] revise (score 40)") == 2 and "tool rag_search ok" in done.stderr
