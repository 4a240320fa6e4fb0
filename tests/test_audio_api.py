"""/v1/audio/transcriptions and /v1/audio/speech through the unmodified openai SDK against a real Hearth on
the embedded Whisper tiny.en and piper voice; bad uploads get clear errors; and a second Hearth serves the
same aliases through a remote OpenAI-compatible backend (the first Hearth as its upstream)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from hearth.gateway.audio import probe_duration
from tests.harness import run_hearth
from tests.voice_helpers import PHRASES, noise, speech, speech_server, two_hour_mp3, words

FOX = PHRASES[0]


@pytest.fixture(scope="module")
def hearth():
    return speech_server()


@pytest.fixture
def client(hearth) -> openai.OpenAI:
    return openai.OpenAI(base_url=hearth.v1, api_key=hearth.admin_key, max_retries=0, timeout=60)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "webm", "ogg", "m4a"])
def test_sdk_transcribes_real_speech_in_every_container(client, fmt) -> None:
    text = client.audio.transcriptions.create(model="stt", file=(f"fox.{fmt}", speech(FOX, fmt)))
    got = words(text.text)
    assert {"quick", "brown", "fox", "lazy", "dog"} <= set(got), text.text


def test_response_formats_text_and_verbose_json(client) -> None:
    audio = speech(FOX)
    plain = client.audio.transcriptions.create(
        model="whisper-1", file=("fox.wav", audio), response_format="text"
    )
    assert "fox" in words(plain)
    verbose = client.audio.transcriptions.create(
        model="stt", file=("fox.wav", audio), response_format="verbose_json"
    )
    assert "fox" in words(verbose.text)
    assert verbose.language == "en" and 1.5 < verbose.duration < 6
    assert verbose.segments and verbose.segments[0].start >= 0
    assert verbose.segments[-1].end <= verbose.duration + 0.5
    assert "fox" in words(" ".join(s.text for s in verbose.segments))
    srt = client.audio.transcriptions.create(model="stt", file=("fox.wav", audio), response_format="srt")
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "fox" in words(srt)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus"])
def test_sdk_speech_decodes_as_audio_of_plausible_length(client, fmt) -> None:
    text = "Hearth speaks. This sentence is the second one."
    with client.audio.speech.with_streaming_response.create(
        model="tts", voice="alloy", input=text, response_format=fmt
    ) as response:
        audio = response.read()
        assert response.headers["content-type"].startswith(
            {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg"}[fmt]
        )
    seconds = probe_duration(audio)
    assert 1.5 < seconds < 8, seconds  # ~8 words at a speaking pace


def test_speech_round_trips_through_transcription(client) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=FOX, response_format="wav").read()
    text = client.audio.transcriptions.create(model="stt", file=("back.wav", audio)).text
    # Every word but one (the short Whisper window misheard "quick" as "quit" once in CI).
    assert len(set(words(FOX)) - set(words(text))) <= 1, text


def test_speed_changes_duration(client) -> None:
    text = "Counting slowly: one, two, three, four, five."
    normal = probe_duration(
        client.audio.speech.create(model="tts", voice="x", input=text, response_format="wav").read()
    )
    fast = probe_duration(
        client.audio.speech.create(
            model="tts", voice="x", input=text, response_format="wav", speed=2.0
        ).read()
    )
    assert fast < normal * 0.7


def test_silence_and_noise_transcribe_to_nothing(client) -> None:
    assert client.audio.transcriptions.create(model="stt", file=("n.wav", noise(2.0))).text.strip() == ""


def post_file(hearth, name: str, data: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{hearth.v1}/audio/transcriptions",
        headers=hearth.headers(),
        files={"file": (name, data)},
        data={"model": "stt", **fields},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("notes.wav", lambda: b"these are my meeting notes, not audio at all\n" * 20, 400, "invalid_audio"),
        ("empty.wav", lambda: b"", 400, "empty_audio"),
        ("cut.wav", lambda: speech(FOX)[:30], 400, "invalid_audio"),
        ("image.png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(200), 400, "invalid_audio"),
    ],
)
def test_bad_uploads_get_clear_errors(hearth, name, data, status, code) -> None:
    r = post_file(hearth, name, data())
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_corrupt_body_after_a_valid_header(hearth) -> None:
    good = speech(FOX, "mp3")
    garbled = good[:400] + bytes(range(256)) * 40
    r = post_file(hearth, "bad.mp3", garbled)
    # Refused whole, rather than a transcript of whatever ffmpeg could read of the start.
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio", r.text


def test_two_hour_upload_is_refused_by_duration(hearth) -> None:
    r = post_file(hearth, "long.mp3", two_hour_mp3())
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "audio_too_long"
    assert error["message"] == "the audio is 7202 s long; the limit is 600 s"  # measured, not assumed


def test_unsupported_container_and_wrong_alias_kind(hearth) -> None:
    # A real audio container Hearth does not take for transcription (AIFF): named for what it is.
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="aiff") as c:
        s = c.add_stream("pcm_s16be", rate=16000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 16000), "<i2"), format="s16", layout="mono")
        f.sample_rate = 16000
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    r = post_file(hearth, "a.wav", buf.getvalue())
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_audio_format", r.text
    r = post_file(hearth, "fox.wav", speech(FOX), model="chat")
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_kind"
    r = httpx.post(
        f"{hearth.v1}/audio/speech",
        headers=hearth.headers(),
        json={"model": "tts", "input": "hi", "response_format": "aac"},
    )
    assert r.status_code == 422 and r.json()["error"]["param"] == "response_format"
    r = httpx.post(
        f"{hearth.v1}/audio/speech", headers=hearth.headers(), json={"model": "tts", "input": "..."}
    )
    assert r.status_code == 400 and "no words" in r.json()["error"]["message"]
    r = httpx.post(f"{hearth.v1}/audio/speech", json={"model": "tts", "input": "hi"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_remote_backend_serves_the_same_aliases(hearth, tmp_path) -> None:
    config = {
        "include_defaults": False,
        "backends": {"up": {"type": "openai", "base_url": hearth.v1, "api_key": hearth.admin_key}},
        "aliases": {
            "stt": {"kind": "transcription", "deployments": [{"backend": "up", "model": "stt"}]},
            "tts": {"kind": "speech", "deployments": [{"backend": "up", "model": "tts"}]},
        },
    }
    with run_hearth(tmp_path, config) as proxy:
        remote = openai.OpenAI(base_url=proxy.v1, api_key=proxy.admin_key, max_retries=0, timeout=60)
        verbose = remote.audio.transcriptions.create(
            model="stt", file=("fox.webm", speech(FOX, "webm")), response_format="verbose_json"
        )
        assert "fox" in words(verbose.text) and verbose.segments
        audio = remote.audio.speech.create(
            model="tts", voice="alloy", input=FOX, response_format="mp3"
        ).read()
        assert 1.5 < probe_duration(audio) < 8
        # The upstream's 400 about the request itself comes back as the client's error.
        r = httpx.post(
            f"{proxy.v1}/audio/speech", headers=proxy.headers(), json={"model": "tts", "input": "— …"}
        )
        assert r.status_code == 400, r.text


def test_speech_streams_sentence_by_sentence(hearth) -> None:
    text = (
        "The first sentence is short. The second one follows it closely. "
        "A third sentence keeps the voice busy for a while. And the fourth one ends the speech."
    )
    body = {"model": "tts", "input": text, "voice": "alloy", "response_format": "pcm"}
    warm = httpx.post(
        f"{hearth.v1}/audio/speech", headers=hearth.headers(), json=body | {"input": "Hi."}, timeout=60
    )
    assert warm.status_code == 200  # piper is warm: what follows times synthesis, not start-up
    started = time.perf_counter()
    arrivals = []
    with httpx.stream(
        "POST", f"{hearth.v1}/audio/speech", headers=hearth.headers(), json=body, timeout=60
    ) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            arrivals.append((time.perf_counter() - started, len(chunk)))
    total = arrivals[-1][0]
    # The first sentence's audio arrives while the others are still being synthesized.
    assert arrivals[0][0] < 0.7 * total, arrivals
    seconds = sum(n for _, n in arrivals) / 2 / 22_050
    assert 5 < seconds < 20, seconds
