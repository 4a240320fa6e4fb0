"""`hearth chat` as an interactive conversation against a real server (fake upstream): history, /rag,
/new, /exit; and the one-shot form keeps working."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    upstream.behaviour.stream_chunks = 3
    with run_hearth(tmp_path_factory.mktemp("chatcli"), remote_config((upstream.url, {}))) as server:
        yield server
    upstream.stop()


def test_interactive_conversation(hearth) -> None:  # type: ignore[no-untyped-def]
    script = "\n".join(
        [
            "hello there",
            "and again",
            "/history",
            "/rag on",  # no collection chosen: refused when typed, with the choices
            "/model gpt-4",  # not an alias of this server: refused, with the choices
            "/collection nope",
            "/rag off",
            "/new",
            "a fresh start",
            "/exit",
            "never sent",
        ]
    )
    result = CliRunner().invoke(
        cli, ["chat", "--url", hearth.url, "--api-key", hearth.admin_key], input=script + "\n"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.splitlines() == [
        "Hearth chat. /help for commands, /exit or Ctrl-D to leave.",
        "you> tok0 tok1 tok2 ",
        "(conversation: Hello from upstream)",
        "you> tok0 tok1 tok2 ",
        "you> user: hello there",  # /history
        "assistant: tok0 tok1 tok2 ",
        "user: and again",
        "assistant: tok0 tok1 tok2 ",
        "you> RAG needs a collection first: `hearth ingest FILES --collection NAME` (yours: none)",
        "you> no chat model 'gpt-4'; choose one of: chat",
        "you> no collection 'nope'; yours: none",
        "you> (RAG off)",
        "you> (new conversation)",
        "you> tok0 tok1 tok2 ",
        "(conversation: Hello from upstream)",
        "you> ",  # /exit: what follows is never sent
    ]

    conversations = httpx.get(f"{hearth.url}/api/conversations", headers=hearth.headers()).json()
    assert sorted(c["message_count"] for c in conversations) == [2, 4]
    assert not any("never sent" in c["title"] for c in conversations)
    # The CLI opened a chat session and its messages carry it.
    sessions = httpx.get(f"{hearth.url}/api/sessions", headers=hearth.headers()).json()
    assert [s["kind"] for s in sessions] == ["chat"]
    first = max(conversations, key=lambda c: c["message_count"])
    detail = httpx.get(f"{hearth.url}/api/conversations/{first['id']}", headers=hearth.headers()).json()
    assert {m["session_id"] for m in detail["messages"]} == {sessions[0]["id"]}


def test_one_shot_still_streams_without_storing(hearth) -> None:  # type: ignore[no-untyped-def]
    before = len(httpx.get(f"{hearth.url}/api/conversations", headers=hearth.headers()).json())
    result = CliRunner().invoke(cli, ["chat", "hi", "--url", hearth.url, "--api-key", hearth.admin_key])
    assert result.exit_code == 0 and result.output.strip() == "tok0 tok1 tok2"
    assert len(httpx.get(f"{hearth.url}/api/conversations", headers=hearth.headers()).json()) == before


def test_one_shot_with_rag_goes_through_conversations_and_reports_errors(hearth) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli, ["chat", "hi", "--rag", "--url", hearth.url, "--api-key", hearth.admin_key]
    )
    assert result.exit_code == 1 and "error 400" in result.output and "collection" in result.output
