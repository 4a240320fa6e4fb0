"""`hearth rag collections|documents|delete|share`, `hearth conversations list|show|resume`, and sources shown
as file names (once each), against a real server (fake chat upstream, embedded embedder)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.fake_openai import FakeOpenAI
from tests.harness import rag_config, run_hearth

LONG = " ".join(
    f"Gardening note {i}: tomatoes need full sun, deep watering twice a week and a stake to climb."
    for i in range(60)
)


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    upstream.behaviour.stream_chunks = 3
    config = rag_config(upstream.url)
    with run_hearth(tmp_path_factory.mktemp("clicommands"), config) as server:
        yield server
    upstream.stop()


def run(hearth, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, [*args, "--url", hearth.url, "--api-key", hearth.admin_key], input=input)
    return result


def test_collections_documents_share_and_delete(hearth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "garden"
    folder.mkdir()
    (folder / "tomatoes.md").write_text("# Tomatoes\n\n" + LONG)
    (folder / "roses.txt").write_text("Roses like morning sun and pruning in early spring.")
    ingested = run(hearth, "ingest", str(folder), "--collection", "garden")
    assert ingested.exit_code == 0, ingested.output
    assert "2 indexed" in ingested.output

    listed = run(hearth, "rag", "collections")
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if "garden" in line]
    assert " 2 " in row and "you" in row

    documents = run(hearth, "rag", "documents", "garden")
    assert documents.exit_code == 0
    assert "garden/tomatoes.md" in documents.output and "garden/roses.txt" in documents.output
    assert "indexed" in documents.output

    httpx.post(f"{hearth.url}/api/admin/users", json={"username": "bob"}, headers=hearth.headers())
    shared = run(hearth, "rag", "share", "garden", "bob")
    assert shared.exit_code == 0 and "garden is shared with: bob" in shared.output
    unshared = run(hearth, "rag", "share", "garden", "bob", "--remove")
    assert unshared.exit_code == 0 and "garden is shared with: nobody" in unshared.output
    assert run(hearth, "rag", "share", "garden", "nobody-here").exit_code == 1

    missing = run(hearth, "rag", "delete", "garden", "--document", "nope.md", "--yes")
    assert missing.exit_code == 1 and "no document 'nope.md' in garden" in missing.output
    # Without --yes it asks; "n" keeps everything.
    kept = run(hearth, "rag", "delete", "garden", "--document", "garden/roses.txt", input="n\n")
    assert kept.exit_code == 1 and "garden/roses.txt" in run(hearth, "rag", "documents", "garden").output
    gone = run(hearth, "rag", "delete", "garden", "--document", "garden/roses.txt", "--yes")
    assert gone.exit_code == 0 and "deleted garden/roses.txt" in gone.output
    left = run(hearth, "rag", "documents", "garden").output
    assert "roses" not in left and "tomatoes" in left

    dropped = run(hearth, "rag", "delete", "garden", "--yes")
    assert dropped.exit_code == 0 and "deleted collection garden" in dropped.output
    assert "garden" not in run(hearth, "rag", "collections").output


def test_sources_are_file_names_once_each_and_conversations_resume(hearth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes.md"
    notes.write_text("# Tomatoes\n\n" + LONG)
    assert run(hearth, "ingest", str(notes), "--collection", "veg").exit_code == 0

    asked = run(hearth, "chat", "How often do tomatoes need water?", "--rag", "--collection", "veg")
    assert asked.exit_code == 0, asked.output
    lines = asked.output.splitlines()
    sources = [line.strip() for line in lines if line.strip().startswith("[") and "sources from" not in line]
    # Several chunks of one file are one source: its name, with the numbers the answer may cite.
    assert sources == ["[1,2,3] notes.md"], asked.output

    listed = run(hearth, "conversations", "list")
    assert listed.exit_code == 0
    [row] = [line for line in listed.output.splitlines() if "Hello from upstream" in line]
    conversation_id = row.split()[1]
    assert len(conversation_id) == 32

    shown = run(hearth, "conversations", "show", conversation_id)
    assert shown.exit_code == 0
    # The fake model's "tok0 tok1 …" cites nothing: the stored reply is the extractive answer.
    assert "How often do tomatoes need water?" in shown.output
    assert "deep watering twice a week" in shown.output

    resumed = run(hearth, "conversations", "resume", conversation_id, input="and roses?\n/exit\n")
    assert resumed.exit_code == 0, resumed.output
    assert "(resuming: Hello from upstream)" in resumed.output
    detail = httpx.get(f"{hearth.url}/api/conversations/{conversation_id}", headers=hearth.headers()).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "user", "assistant"]
    assert detail["messages"][2]["content"] == "and roses?"

    unknown = run(hearth, "conversations", "show", "0" * 32)
    assert unknown.exit_code == 1 and "error 404" in unknown.output
