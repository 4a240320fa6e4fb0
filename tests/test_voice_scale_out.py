"""The voice pipeline on the scale-out substrate: PostgreSQL rows, NATS JetStream events, Redis sessions,
and every model behind a remote OpenAI-compatible backend (another Hearth's /v1, embedded models there)."""

from __future__ import annotations

import asyncio
import base64

import httpx
import orjson
import psycopg

from hearth.gateway.audio import probe_duration
from tests.conftest import NATS_URL, POSTGRES_DSN, REDIS_URL, postgres_url
from tests.harness import run_hearth
from tests.helpers import read_stream
from tests.voice_helpers import PHRASES, speech, speech_server, words


def test_voice_turn_on_postgres_nats_redis_and_remote_models(tmp_path, postgres_schema, prefix) -> None:
    upstream = speech_server()
    backend = {"type": "openai", "base_url": upstream.v1, "api_key": upstream.admin_key}
    config = {
        "include_defaults": False,
        "backends": {"remote": backend},
        "aliases": {
            name: {"kind": kind, "deployments": [{"backend": "remote", "model": name}]}
            for name, kind in (("stt", "transcription"), ("tts", "speech"), ("chat", "chat"))
        },
    }
    with run_hearth(
        tmp_path,
        config,
        database_url=postgres_url(postgres_schema),
        nats_url=NATS_URL,
        nats_prefix=prefix,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        voice_max_reply_tokens=40,
    ) as hearth:
        audio = base64.b64encode(speech(PHRASES[1], "webm")).decode()
        r = httpx.post(
            f"{hearth.url}/api/voice", headers=hearth.headers(), json={"audio_b64": audio}, timeout=120
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert "france" in words(body["transcription"]) and body["response_text"].strip()
        assert probe_duration(base64.b64decode(body["audio_b64"])) > 0.3
        messages = asyncio.run(read_stream(NATS_URL, f"{prefix.upper()}_VOICE", expect=7))
    kinds = [m.subject.rsplit(".", 1)[1] for m in messages]
    assert kinds == [
        "VoiceRequestReceived",
        "TranscriptionStarted",
        "TranscriptionCompleted",
        "LLMInferenceStarted",
        "TTSSynthesisStarted",  # the first sentence is spoken before the whole reply is in
        "LLMResponseGenerated",
        "AudioResponseReady",
    ]
    assert all(orjson.loads(m.data)["request_id"] == body["request_id"] for m in messages)
    with psycopg.connect(POSTGRES_DSN) as conn:
        rows = conn.execute(
            f'SELECT transcription, session_id FROM "{postgres_schema}".voice_requests'
        ).fetchall()
    assert rows == [(body["transcription"], body["session_id"])] and body["session_id"]
