"""Intent extraction: the deterministic parser on varied phrasings, and the chat-model path (JSON, garbage,
partly wrong JSON) through a real Hearth server whose `chat` alias is a fake OpenAI upstream."""

from __future__ import annotations

import json

import httpx
import pytest

from hearth.planner.intent import extract_json, merge_model_intent, parse_budget, parse_intent, parse_users
from tests.fake_openai import Behaviour, FakeOpenAI
from tests.harness import remote_config, run_hearth

PHRASINGS = [
    ("I need a chatbot for 5,000 employees", "chatbot_conversational", 5000, "medium", None, []),
    (
        "Customer support assistant for 12k customers, latency is critical, we run H100s",
        "chatbot_conversational",
        12000,
        "high",
        None,
        ["H100-80GB"],
    ),
    ("Code completion in the IDE for 300 developers", "code_completion", 300, "medium", None, []),
    (
        "an assistant that writes python functions for 1.5k engineers",
        "code_generation_detailed",
        1500,
        "medium",
        None,
        [],
    ),
    (
        "Translate product descriptions for 2000 users, budget 50,000 dollars per year",
        "translation",
        2000,
        "medium",
        50000 / 12,
        [],
    ),
    (
        "RAG over our internal documentation for 800 staff on L40S or A100",
        "document_analysis_rag",
        800,
        "medium",
        None,
        ["A100-80GB", "L40S-48GB"],
    ),
    ("summarize support tickets for ten thousand agents", "summarization_short", 10000, "medium", None, []),
    (
        "Summarise 100-page reports for 200 analysts, overnight batch is fine",
        "long_document_summarization",
        200,
        "low",
        None,
        [],
    ),
    ("Legal contract review for a law firm of 40 lawyers", "research_legal_analysis", 40, "medium", None, []),
    (
        "marketing copy and blog posts for a team of 25, budget $3k/month",
        "content_generation",
        25,
        "medium",
        3000.0,
        [],
    ),
    (
        "We want a real-time conversational bot serving 1M users on H200",
        "chatbot_conversational",
        1_000_000,
        "high",
        None,
        ["H200-141GB"],
    ),
]


@pytest.mark.parametrize(("text", "use_case", "users", "priority", "budget", "gpus"), PHRASINGS)
def test_parser_on_varied_phrasings(
    text: str, use_case: str, users: int, priority: str, budget: float | None, gpus: list[str]
) -> None:
    intent = parse_intent(text)
    assert intent.use_case == use_case
    assert intent.users == users
    assert intent.latency_priority == priority
    assert intent.budget_per_month == (pytest.approx(budget) if budget else None)
    assert sorted(intent.preferred_gpus) == sorted(gpus)


def test_numbers_and_budgets() -> None:
    assert parse_users("a team of 40") == 40
    assert parse_users("serving about 25k monthly users") == 25000
    assert parse_users("for 3,500 students") == 3500
    assert parse_users("no number here") is None
    assert parse_budget("budget of 10k per month") == 10000
    assert parse_budget("$120,000 a year") == 10000
    assert parse_budget("nothing about money") is None
    with pytest.raises(ValueError, match="how many users"):
        parse_intent("a chatbot, please")


def test_json_in_a_chatty_reply_and_field_by_field_merge() -> None:
    reply = (
        'Sure! Here it is:\n```json\n{"use_case": "translation", "users": 7, "latency_priority": "fast"}\n```'
    )
    assert extract_json(reply) == {"use_case": "translation", "users": 7, "latency_priority": "fast"}
    assert extract_json("no json { at all") is None
    intent, by = merge_model_intent(extract_json(reply), "translate manuals for 800 users")
    # The model's valid fields are kept, its invalid one ("fast") dropped, and the stated user count wins.
    assert by == "model"
    assert (intent.use_case, intent.users, intent.latency_priority) == ("translation", 800, "medium")
    intent, by = merge_model_intent(
        {"users": 5000, "use_case": "code_completion"}, "autocomplete for our devs"
    )
    assert by == "model" and intent.users == 5000  # the text gives no number: the model's is used
    intent, by = merge_model_intent(None, "a chatbot for 800 users")
    assert by == "parser" and intent.users == 800


@pytest.fixture
def upstream():  # type: ignore[no-untyped-def]
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def post_intent(hearth, text: str, **extra: object) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{hearth.url}/api/planner/intent", json={"text": text, **extra}, headers=hearth.headers(), timeout=60
    )


def test_model_path_through_the_chat_alias(upstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model_json = {
        "use_case": "document_analysis_rag",
        "users": 2500,
        "latency_priority": "high",
        "budget_per_month": 9000,
        "preferred_gpus": ["NVIDIA L40S"],
        "domain": "legal",
    }
    upstream.behaviour = Behaviour(reply=json.dumps(model_json))
    with run_hearth(tmp_path, remote_config((upstream.url, {}))) as hearth:
        r = post_intent(hearth, "Questions over our contracts for 2,500 lawyers, must be snappy, $9k a month")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["extracted_by"] == "model"
        assert body["intent"] == {**model_json, "preferred_gpus": ["L40S-48GB"]}
        # The spec follows: RAG profile, conversational made one class stricter by the priority.
        assert (
            body["spec"]["traffic"]["prompt_tokens"] == 4096 and body["spec"]["experience_class"] == "instant"
        )
        sent = upstream.stats.bodies[-1]
        assert (
            sent["response_format"] == {"type": "json_object"}
            and "use_case" in sent["messages"][0]["content"]
        )

        # Garbage from the model: the parser answers from the same text.
        upstream.behaviour = Behaviour(reply="I think you want a big GPU! Good luck.")
        r = post_intent(hearth, "a chatbot for 5,000 employees")
        assert r.status_code == 200 and r.json()["extracted_by"] == "parser"
        assert (
            r.json()["intent"]["users"] == 5000 and r.json()["intent"]["use_case"] == "chatbot_conversational"
        )

        # The upstream failing outright: still the parser, never a 5xx.
        upstream.behaviour = Behaviour(mode="error500")
        r = post_intent(hearth, "code completion for 300 developers")
        assert r.status_code == 200 and r.json()["intent"]["use_case"] == "code_completion"

        # use_model=false skips the model.
        before = upstream.stats.requests
        upstream.behaviour = Behaviour()
        r = post_intent(hearth, "a chatbot for 100 users", use_model=False)
        assert r.status_code == 200 and upstream.stats.requests == before

        # No number of users anywhere: a 422 that says what is missing.
        upstream.behaviour = Behaviour(reply='{"use_case": "chatbot_conversational"}')
        r = post_intent(hearth, "a chatbot please")
        assert r.status_code == 422 and "how many users" in r.json()["error"]["message"]
