"""`hearth speak`, `hearth transcribe` and `hearth voice` against a real server on the embedded models."""

from __future__ import annotations

from typer.testing import CliRunner

from hearth.cli.main import app
from hearth.gateway.audio import probe_duration
from tests.voice_helpers import PHRASES, speech, speech_server, words


def test_speak_then_transcribe_then_ask(tmp_path) -> None:
    server = speech_server()
    auth = ["--url", server.url, "--api-key", server.admin_key]
    runner = CliRunner()
    out = tmp_path / "fox.mp3"
    r = runner.invoke(app, ["speak", PHRASES[0], "-o", str(out), *auth])
    assert r.exit_code == 0, r.output
    assert 1.5 < probe_duration(out.read_bytes()) < 8
    r = runner.invoke(app, ["transcribe", str(out), *auth])
    # Whisper's short window misheard one word in 3 of 160 spoken clips when it was measured, and "quick"
    # came back as "quit" once in CI: the round trip must keep every word of the sentence but one.
    said = set(words(PHRASES[0]))
    assert r.exit_code == 0 and len(said - set(words(r.output))) <= 1, r.output
    question = tmp_path / "q.wav"
    question.write_bytes(speech(PHRASES[1]))
    reply = tmp_path / "reply.wav"
    r = runner.invoke(app, ["voice", str(question), "-o", str(reply), *auth])
    assert r.exit_code == 0, r.output
    you = next(line for line in r.output.splitlines() if line.startswith("you:"))
    assert {"capital", "france"} <= set(words(you)) and "hearth: " in r.output
    assert probe_duration(reply.read_bytes()) > 0.3
    # A text file is refused with the server's message and a failing exit code.
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio " * 50)
    r = runner.invoke(app, ["transcribe", str(notes), *auth])
    assert r.exit_code == 1 and "not audio" in r.output
