"""The query router over real HTTP: a Hearth server with the embedded MiniLM embedder and real RAG, and a
scripted OpenAI-compatible upstream as the chat and judge models (good, low-scored, unparseable and slow
answers). Routing decisions, citations, the retry on a low score, the fallback judge, SSE, per-user runs,
and resuming a failed run from its checkpoint."""

from __future__ import annotations

import httpx
import pytest

from tests.agents_helpers import Script, agents_config, ingest, nodes, run, stream_events, user_key
from tests.fake_openai import FakeOpenAI
from tests.harness import run_hearth
from tests.helpers import wait_indexed
from tests.serve_helpers import clean_env
from tests.serve_helpers import hearth as cli

GOOD_ANSWER = "The boiler pressure should read 1.5 bar [1]."


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    script = Script()
    upstream.behaviour.script = script
    with run_hearth(
        tmp_path_factory.mktemp("agents-router"), agents_config(upstream.url), agents_judge_timeout=1.0
    ) as server:
        server.script = script  # type: ignore[attr-defined]
        ingest(server, "home", "Boiler manual", "The boiler pressure should read 1.5 bar. Bleed radiators.")
        ingest(server, "home", "Garden notes", "Tomatoes need watering every morning in July and August.")
        wait_indexed(server, "home", 2)
        yield server
    upstream.stop()


def test_factual_question_routes_to_rag_and_cites_its_source(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge='{"score": 92, "reason": "ok"}')
    r = run(hearth, "router", {"query": "What should the boiler pressure read?", "collection": "home"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "completed"
    result = body["result"]
    assert result["category"] == "factual" and result["classified_by"] == "model"
    assert result["route"] == "rag" and result["collection"] == "home"
    assert result["answer"] == GOOD_ANSWER
    assert result["citations"] and result["sources"][0]["title"] == "Boiler manual"
    assert result["score"] == 92 and result["judged_by"] == "model" and not result["retried"]
    assert nodes(body) == ["classify", "route", "retrieve", "generate", "judge", "finish"]
    # The answer prompt carried the retrieved passage; every step has its record.
    prompt = next(b for k, b in hearth.script.calls if k == "answer")["messages"][-1]["content"]
    assert "1.5 bar" in prompt
    for step in body["steps"]:
        assert {"input", "output", "tokens", "latency_ms", "model_ms", "tool_calls"} <= set(step)


def test_low_score_retries_once_with_widened_retrieval(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(
        classify="factual",
        answer=GOOD_ANSWER,
        judge=['{"score": 20}', '{"score": 81}'],
    )
    body = run(
        hearth, "router", {"query": "What should the boiler pressure read?", "collection": "home"}
    ).json()
    result = body["result"]
    assert result["retried"] and [a["score"] for a in result["attempts"]] == [20, 81]
    assert result["score"] == 81 and result["passed"]
    retrieves = [s for s in body["steps"] if s["node"] == "retrieve"]
    assert [s["input"]["top_k"] for s in retrieves] == [10, 30]  # widened…
    assert retrieves[1]["input"]["mode"] == "dense"  # …and the other mode
    assert nodes(body).count("generate") == 2 and hearth.script.count("judge") == 2


def test_only_one_retry_even_when_both_attempts_score_low(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge='{"score": 10}')
    result = run(hearth, "router", {"query": "Boiler pressure?", "collection": "home"}).json()["result"]
    assert len(result["attempts"]) == 2 and not result["passed"]
    assert hearth.script.count("answer") == 2


def test_unparseable_judge_falls_back_to_signals_and_never_passes_silently(hearth) -> None:  # type: ignore[no-untyped-def]
    # An answer that loops and ignores the question, judged by a model that says nothing usable.
    loop = "I like trains. I like trains. I like trains. I like trains."
    hearth.script.reset(classify="factual", answer=loop, judge="What a lovely day!", rewrite="Boiler?")
    result = run(hearth, "router", {"query": "What should the boiler pressure read?"}).json()["result"]
    assert result["judged_by"] == "signals" and result["route"] == "direct"
    assert result["retried"] and not result["passed"] and result["score"] < 60
    assert result["attempts"][1]["strategy"] == "rewrite" and result["attempts"][1]["query"] == "Boiler?"
    # A grounded, cited answer under the same judge passes on the signals.
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge="no idea")
    result = run(hearth, "router", {"query": "Boiler pressure?", "collection": "home"}).json()["result"]
    assert result["judged_by"] == "signals" and result["passed"] and not result["retried"]


def test_slow_judge_times_out_to_the_signals(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge={"text": '{"score": 5}', "delay": 3})
    body = run(hearth, "router", {"query": "Boiler pressure?", "collection": "home"}).json()
    judge = next(s for s in body["steps"] if s["node"] == "judge")
    assert judge["output"]["judged_by"] == "signals" and "judge failed" in judge["output"]["note"]


def test_chit_chat_goes_direct_and_rules_are_the_floor(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="purple", answer="Hello! How can I help?", judge='{"score": 75}')
    result = run(hearth, "router", {"query": "hello there", "collection": "home"}).json()["result"]
    assert result["category"] == "chit-chat" and result["classified_by"] == "rules"
    assert result["route"] == "direct" and result["sources"] == [] and result["citations"] == []
    # No collection: even a factual question is answered directly.
    hearth.script.reset(classify="factual", answer="Paris is the capital of France.", judge="score: 88")
    result = run(hearth, "router", {"query": "What is the capital of France?"}).json()["result"]
    assert result["route"] == "direct" and result["score"] == 88


def test_direct_answer_scored_low_retries_from_the_collection(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="creative", answer=GOOD_ANSWER, judge=['{"score": 10}', '{"score": 90}'])
    result = run(hearth, "router", {"query": "Boiler pressure, please", "collection": "home"}).json()[
        "result"
    ]
    first, second = result["attempts"]
    assert first["route"] == "direct" and second["route"] == "rag" and second["strategy"] == "rag"
    assert result["route"] == "rag" and result["citations"]


def test_stream_relays_node_events_and_tokens(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge='{"score": 90}')
    events = stream_events(
        hearth, "/api/agents/router", {"query": "Boiler pressure?", "collection": "home", "stream": True}
    )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run" and kinds[-1] == "done"
    assert [e["node"] for e in events if e["type"] == "node"] == [
        "classify",
        "route",
        "retrieve",
        "generate",
        "judge",
        "finish",
    ]
    tokens = [e["content"] for e in events if e["type"] == "token"]
    assert "".join(tokens) == GOOD_ANSWER
    # Tokens arrive before the generate node's event (as they stream, not after).
    assert kinds.index("token") < next(
        i for i, e in enumerate(events) if e["type"] == "node" and e["node"] == "generate"
    )
    run_id = events[0]["run_id"]
    replay = stream_events(hearth, f"/api/agents/router/{run_id}/stream")
    assert replay[-1]["type"] == "done" and replay[-1]["run"]["id"] == run_id


def test_runs_are_per_user(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge='{"score": 90}')
    mine = run(hearth, "router", {"query": "Boiler pressure?", "collection": "home"}).json()
    other = user_key(hearth, "agents-other")
    headers = hearth.headers(other)
    for path in ("", "/checkpoints", "/stream"):
        r = httpx.get(f"{hearth.url}/api/agents/router/{mine['id']}{path}", headers=headers)
        assert r.status_code == 404, (path, r.text)
    assert (
        httpx.post(f"{hearth.url}/api/agents/router/{mine['id']}/resume", headers=headers).status_code == 404
    )
    assert httpx.get(f"{hearth.url}/api/agents/router", headers=headers).json() == []
    # …nor can they answer from the admin's collection.
    refused = run(hearth, "router", {"query": "Boiler?", "collection": "home"}, key=other)
    assert refused.status_code == 404, refused.text
    listed = httpx.get(f"{hearth.url}/api/agents/router", headers=hearth.headers()).json()
    assert mine["id"] in [r["id"] for r in listed]
    # A router run is not a crew run.
    assert (
        httpx.get(f"{hearth.url}/api/agents/crew/{mine['id']}", headers=hearth.headers()).status_code == 404
    )


def test_a_failed_run_resumes_from_its_checkpoint(hearth) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer={"status": 500}, judge='{"score": 90}')
    failed = run(hearth, "router", {"query": "Boiler pressure?", "collection": "home"}).json()
    assert failed["status"] == "failed" and "generate" in failed["error"]
    assert failed["next"] == ["generate"] and nodes(failed) == ["classify", "route", "retrieve"]
    hearth.script.reset(classify="analytical", answer=GOOD_ANSWER, judge='{"score": 90}')
    resumed = httpx.post(
        f"{hearth.url}/api/agents/router/{failed['id']}/resume", headers=hearth.headers(), timeout=60
    )
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["status"] == "completed" and body["result"]["answer"] == GOOD_ANSWER
    # classify, route and retrieve were not run again: the classification is the first run's.
    assert hearth.script.count("classify") == 0 and body["result"]["category"] == "factual"
    assert nodes(body) == ["classify", "route", "retrieve", "generate", "judge", "finish"]
    checkpoints = httpx.get(
        f"{hearth.url}/api/agents/router/{failed['id']}/checkpoints", headers=hearth.headers()
    ).json()
    assert [c["wrote"] for c in checkpoints if c["wrote"]] == [
        ["classify"],
        ["route"],
        ["retrieve"],
        ["generate"],
        ["judge"],
        ["finish"],
    ]
    again = httpx.post(f"{hearth.url}/api/agents/router/{failed['id']}/resume", headers=hearth.headers())
    assert again.status_code == 409


def test_bad_requests_are_refused_before_a_run_starts(hearth) -> None:  # type: ignore[no-untyped-def]
    before = len(httpx.get(f"{hearth.url}/api/agents/router", headers=hearth.headers()).json())
    assert run(hearth, "router", {"query": "x", "route": "rag"}).status_code == 400
    assert run(hearth, "router", {"query": "x", "collection": "nope"}).status_code == 404
    assert run(hearth, "router", {"query": "   "}).status_code == 422
    assert len(httpx.get(f"{hearth.url}/api/agents/router", headers=hearth.headers()).json()) == before


def test_cli_ask_agent_router(hearth, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hearth.script.reset(classify="factual", answer=GOOD_ANSWER, judge='{"score": 90}')
    args = ["ask", "--agent", "router", "Boiler pressure?", "--collection", "home"]
    done = cli(
        *args, "--url", hearth.url, "--api-key", hearth.admin_key, env=clean_env(tmp_path), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert GOOD_ANSWER in done.stdout and "Boiler manual" in done.stdout
    assert "factual → rag; judged 90 by model (passed)" in done.stdout
    assert "[classify] factual (by model)" in done.stderr and "[judge] score 90 (by model)" in done.stderr
    refused = cli(
        "ask",
        "Boiler?",
        "--url",
        hearth.url,
        "--api-key",
        hearth.admin_key,
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert refused.returncode != 0 and "--collection" in refused.stderr
