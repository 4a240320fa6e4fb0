"""The voice pipeline end to end on a real Hearth with the embedded models: spoken audio (made by piper) in,
Whisper's transcript, SmolLM2's reply, piper's audio out — over POST /api/voice and the WebSocket, with
barge-in, bad input, per-user isolation and the voice event stream in the outbox."""

from __future__ import annotations

import asyncio
import base64

import httpx
import orjson
import pytest
import sqlalchemy
from websockets.sync.client import connect

from hearth.auth.service import AuthService
from hearth.gateway.audio import probe_duration
from hearth.platform.db import Database, sync_url
from tests.helpers import wait_until
from tests.voice_helpers import PHRASES, noise, silence, speech, speech_server, two_hour_mp3, words

QUESTION = PHRASES[1]
LONG_QUESTION = PHRASES[2]
VOICE_EVENTS = [
    "VoiceRequestReceived",
    "TranscriptionStarted",
    "TranscriptionCompleted",
    "LLMInferenceStarted",
    "TTSSynthesisStarted",
    "LLMResponseGenerated",
    "AudioResponseReady",
]


@pytest.fixture(scope="module")
def hearth():
    return speech_server()


@pytest.fixture(scope="module")
def other_key(hearth) -> str:
    async def make() -> str:
        db = Database(hearth.settings.resolved_database_url)
        try:
            auth = AuthService(db)
            user = await auth.create_user(username="other")
            return (await auth.create_key(user_id=user.id))[1]
        finally:
            await db.close()

    return asyncio.run(make())


def voice_json(hearth, body: dict, key: str | None = None) -> httpx.Response:
    return httpx.post(f"{hearth.url}/api/voice", headers=hearth.headers(key), json=body, timeout=120)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def outbox_types(hearth, request_id: str) -> list[str]:
    """The voice events stored for one request, in order (on whichever database the server runs)."""
    engine = sqlalchemy.create_engine(sync_url(hearth.settings.resolved_database_url))
    try:
        with engine.connect() as db:
            rows = db.execute(
                sqlalchemy.text("SELECT type, payload FROM event_outbox WHERE context = 'voice' ORDER BY seq")
            ).all()
    finally:
        engine.dispose()
    return [t for t, payload in rows if request_id.encode() in bytes(payload)]


def test_spoken_question_gets_a_spoken_answer(hearth) -> None:
    r = voice_json(hearth, {"audio_b64": b64(speech(QUESTION)), "format": "wav", "language": "en"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"capital", "france"} <= set(words(body["transcription"])), body["transcription"]
    assert body["response_text"].strip()
    assert body["audio_format"] == "wav" and body["rag_docs_used"] == 0
    audio = base64.b64decode(body["audio_b64"])
    assert 0.3 < probe_duration(audio) < 60 and body["audio_ms"] > 300
    stages = body["latency"]
    assert {"transcription", "llm", "tts", "first_audio", "total"} <= set(stages)
    assert 0 < stages["transcription"] < stages["first_audio"] <= stages["total"] == body["latency_ms"]
    assert outbox_types(hearth, body["request_id"]) == VOICE_EVENTS
    stored = httpx.get(
        f"{hearth.url}/api/voice/requests/{body['request_id']}", headers=hearth.headers()
    ).json()
    assert stored["transcription"] == body["transcription"] and stored["audio_kept"] is True
    assert stored["response"]["response_text"] == body["response_text"]
    kept = httpx.get(f"{hearth.url}/api/voice/requests/{body['request_id']}/audio", headers=hearth.headers())
    assert kept.status_code == 200 and kept.content == audio


def test_multipart_mp3_in_mp3_out(hearth) -> None:
    r = httpx.post(
        f"{hearth.url}/api/voice",
        headers=hearth.headers(),
        files={"file": ("q.bin", speech(QUESTION, "mp3"))},
        data={"audio_format": "mp3", "enable_rag": "false"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "france" in words(body["transcription"]) and body["audio_format"] == "mp3"
    assert probe_duration(base64.b64decode(body["audio_b64"])) > 0.3


@pytest.mark.parametrize("clip", [lambda: silence(2.0), lambda: noise(2.0)], ids=["silence", "noise"])
def test_speechless_audio_is_422_and_nothing_is_stored(hearth, other_key, clip) -> None:
    r = voice_json(hearth, {"audio_b64": b64(clip())}, key=other_key)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"] == "no speech detected"
    assert httpx.get(f"{hearth.url}/api/voice/requests", headers=hearth.headers(other_key)).json() == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (lambda: {"audio_b64": b64(speech(QUESTION, "ogg"))}, 400, "unsupported_audio_format"),
        (lambda: {"audio_b64": b64(speech(QUESTION, "wav")), "format": "mp3"}, 400, "format_mismatch"),
        (
            lambda: {"audio_b64": b64(b"plain text pretending to be a wav file" * 10), "format": "wav"},
            400,
            "invalid_audio",
        ),
        (lambda: {"audio_b64": "!!not base64!!"}, 400, None),
        (lambda: {"audio_b64": b64(two_hour_mp3())}, 413, "audio_too_long"),
        (lambda: {"audio_b64": b64(speech(QUESTION)), "format": "flac"}, 422, "invalid_value"),
        (lambda: {"audio_b64": b64(speech(QUESTION)), "model": "embedder"}, 400, "wrong_model_kind"),
    ],
    ids=["ogg", "mismatch", "text-as-wav", "base64", "two-hours", "format-enum", "model-kind"],
)
def test_bad_voice_input_gets_clear_errors(hearth, other_key, body, status, code) -> None:
    r = voice_json(hearth, body(), key=other_key)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert httpx.get(f"{hearth.url}/api/voice/requests", headers=hearth.headers(other_key)).json() == []


def test_another_users_requests_are_404(hearth, other_key) -> None:
    mine = httpx.get(f"{hearth.url}/api/voice/requests", headers=hearth.headers()).json()
    assert mine, "an earlier test stored a request"
    rid = mine[0]["id"]
    for path in (f"/api/voice/requests/{rid}", f"/api/voice/requests/{rid}/audio"):
        r = httpx.get(hearth.url + path, headers=hearth.headers(other_key))
        assert r.status_code == 404, r.text


def ws_url(hearth) -> str:
    return hearth.url.replace("http://", "ws://") + "/api/voice/stream"


def receive(ws, timeout: float = 60) -> dict:
    return orjson.loads(ws.recv(timeout=timeout))


def test_websocket_streams_transcript_text_then_audio_sentence_by_sentence(hearth) -> None:
    with connect(ws_url(hearth), additional_headers=hearth.headers()) as ws:
        ready = receive(ws)
        assert ready["type"] == "ready" and ready["session_id"]
        ws.send(orjson.dumps({"type": "start", "format": "wav"}).decode())
        audio = speech(LONG_QUESTION)
        for i in range(0, len(audio), 16_000):  # chunks, as a microphone would send them
            ws.send(audio[i : i + 16_000])
        ws.send(orjson.dumps({"type": "end"}).decode())
        messages = []
        while (m := receive(ws))["type"] not in ("done", "error"):
            messages.append(m)
        assert m["type"] == "done", m
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "transcript" and "moon" in words(messages[0]["text"])
    deltas = [i for i, k in enumerate(kinds) if k == "delta"]
    clips = [m for m in messages if m["type"] == "audio"]
    assert deltas and clips
    # The first sentence is spoken before the reply is complete.
    assert kinds.index("audio") < deltas[-1], kinds
    assert [c["index"] for c in clips] == list(range(len(clips)))
    for clip in clips:
        assert clip["format"] == "wav" and probe_duration(base64.b64decode(clip["audio_b64"])) > 0.2
    spoken = " ".join(c["text"] for c in clips)
    assert words(spoken) == words("".join(messages[i]["text"] for i in deltas))
    response = m["response"]
    assert response["transcription"] == messages[0]["text"] and response["audio_b64"] == ""
    stored = httpx.get(
        f"{hearth.url}/api/voice/requests/{response['request_id']}", headers=hearth.headers()
    ).json()
    assert stored["streaming"] is True and stored["session_id"] == ready["session_id"]


def test_barge_in_stops_the_answer_and_frees_the_llm(hearth) -> None:
    gateway = hearth.app.state.platform.gateway
    with connect(ws_url(hearth), additional_headers=hearth.headers()) as ws:
        assert receive(ws)["type"] == "ready"
        ws.send(speech(LONG_QUESTION))
        ws.send(orjson.dumps({"type": "end"}).decode())
        while (m := receive(ws))["type"] != "delta":
            assert m["type"] == "transcript"
        ws.send(orjson.dumps({"type": "interrupt"}).decode())
        while (m := receive(ws))["type"] != "interrupted":
            assert m["type"] in ("delta", "audio")  # already in flight when the interrupt arrived
        assert m["stored"] is True
        wait_until(lambda: gateway.slot_usage()["local-llm"] == (0, 0), 5, what="LLM slot freed", every=0.02)
        # Nothing more of the old answer arrives, and the next turn works on the same connection.
        ws.send(speech(QUESTION))
        ws.send(orjson.dumps({"type": "end"}).decode())
        first = receive(ws)
        assert first["type"] == "transcript" and "france" in words(first["text"]), first
        while (m := receive(ws))["type"] not in ("done", "error"):
            pass
        assert m["type"] == "done"
    stored = httpx.get(
        f"{hearth.url}/api/voice/requests/{m['response']['request_id']}", headers=hearth.headers()
    )
    assert stored.status_code == 200
    interrupted = [
        r
        for r in httpx.get(f"{hearth.url}/api/voice/requests", headers=hearth.headers()).json()
        if r["response"]["interrupted"]
    ]
    assert len(interrupted) == 1 and "moon" in words(interrupted[0]["transcription"])


def test_websocket_needs_a_key_and_reports_bad_audio(hearth) -> None:
    with connect(ws_url(hearth)) as ws:
        ws.send(orjson.dumps({"type": "auth", "api_key": "wrong"}).decode())
        assert receive(ws)["status"] == 401
    with connect(ws_url(hearth)) as ws:
        ws.send(orjson.dumps({"type": "auth", "api_key": hearth.admin_key}).decode())
        assert receive(ws)["type"] == "ready"
        ws.send(silence(1.5))
        ws.send(orjson.dumps({"type": "end"}).decode())
        m = receive(ws)
        assert m["type"] == "error" and m["status"] == 422 and m["message"] == "no speech detected"


def test_rag_grounds_the_spoken_answer(hearth) -> None:
    h = hearth.headers()
    r = httpx.post(f"{hearth.url}/api/rag/collections", headers=h, json={"name": "voice-facts"})
    assert r.status_code == 201, r.text
    doc = {
        "text": "Paris is the capital of France. It stands on the river Seine and has the Eiffel Tower.",
        "title": "France",
    }
    r = httpx.post(f"{hearth.url}/api/rag/collections/voice-facts/documents", headers=h, json=doc, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()["job"]["id"]

    def settled() -> str | None:
        status = httpx.get(f"{hearth.url}/api/rag/jobs/{job}", headers=h).json()["status"]
        return status if status in ("indexed", "failed") else None

    assert wait_until(settled, 60, what="ingestion", every=0.2) == "indexed"
    # The request does not say: the user's preferences switch RAG on and pick the collection.
    prefs = {"rag_enabled": True, "collection": "voice-facts"}
    assert httpx.put(f"{hearth.url}/api/me/preferences", headers=h, json=prefs).status_code == 200
    try:
        r = voice_json(hearth, {"audio_b64": b64(speech(QUESTION))})
    finally:
        reset = {"rag_enabled": False, "collection": None}
        assert httpx.put(f"{hearth.url}/api/me/preferences", headers=h, json=reset).status_code == 200
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rag_docs_used"] == 1 and "rag" in out["latency"]  # the collection's one document
    assert outbox_types(hearth, out["request_id"]) == [
        *VOICE_EVENTS[:3],
        "VoiceRAGQueryExecuted",
        *VOICE_EVENTS[3:],
    ]
    stored = httpx.get(f"{hearth.url}/api/voice/requests/{out['request_id']}", headers=h).json()
    assert stored["enable_rag"] is True and stored["collection"] == "voice-facts"
    # A collection the caller cannot see is a 404, and nothing is stored.
    before = len(httpx.get(f"{hearth.url}/api/voice/requests", headers=h).json())
    body = {"audio_b64": b64(speech(QUESTION)), "enable_rag": True, "collection": "nobody-has-this"}
    r = voice_json(hearth, body)
    assert r.status_code == 404, r.text
    assert len(httpx.get(f"{hearth.url}/api/voice/requests", headers=h).json()) == before
