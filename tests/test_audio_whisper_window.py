"""Whisper's short encoder window: a short clip is encoded with its own length (plus silence) instead of a
30 s window, and a transcript that shows Whisper looping is redone with the full window. Real speech made
by piper, the embedded Whisper tiny.en, no server."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hearth.config import BackendConfig
from hearth.gateway.audio import TRANSCRIPTION_FORMATS, decode_upload
from hearth.gateway.backends import whisper
from hearth.gateway.backends.base import TranscriptionRequest
from hearth.gateway.backends.whisper import WhisperBackend
from tests.voice_helpers import PHRASES, speech, words


@pytest.fixture(scope="module")
def backend() -> WhisperBackend:
    b = WhisperBackend("stt", BackendConfig(type="whisper"), threads=2)
    b.load()
    return b


def transcribe(b: WhisperBackend, phrase: str) -> tuple[str, list[dict], list[bool], float]:
    """(text, segments, the window of each decode: True = short, the clip's seconds)."""
    samples = decode_upload(speech(phrase), allowed=TRANSCRIPTION_FORMATS, max_seconds=60).samples
    decodes: list[bool] = []
    original = b._decode

    def spy(*args, short: bool):  # type: ignore[no-untyped-def]
        decodes.append(short)
        return original(*args, short=short)

    b._decode = spy  # type: ignore[method-assign]
    try:
        request = TranscriptionRequest(file=b"", filename="q.wav", language="en")
        result = b._run(samples, request, threading.Event())
    finally:
        del b._decode
    return result.text, result.segments, decodes, len(samples) / 16_000


@pytest.mark.parametrize("phrase", PHRASES)
def test_short_clip_is_transcribed_in_a_short_window_with_the_right_words(backend, phrase) -> None:
    text, segments, decodes, seconds = transcribe(backend, phrase)
    assert decodes == [True], decodes  # one short decode, no fallback to the full window
    assert words(text) == words(phrase), text
    assert segments and all(0 <= s["start"] <= s["end"] <= round(seconds, 3) for s in segments), segments


def test_a_looping_short_decode_is_redone_with_the_full_window(backend, monkeypatch) -> None:
    # A 1 s window with no silence after the speech makes tiny.en repeat itself ("What is the capital of
    # France? What is the capital of …"); the transcript must still come back right, once.
    monkeypatch.setattr(whisper, "_MIN_WINDOW_FRAMES", 100)
    monkeypatch.setattr(whisper, "_SILENCE_FRAMES", 0)
    monkeypatch.setattr(whisper, "_TAIL_SILENCE", np.zeros(0, dtype=np.float32))
    fallbacks = 0
    for phrase in PHRASES:
        text, _, decodes, _ = transcribe(backend, phrase)
        assert words(text) == words(phrase), (text, decodes)
        fallbacks += decodes == [True, False]
    assert fallbacks >= 1


def test_degenerate_transcripts_are_recognised() -> None:
    def row(text: str, start: float = 0.0, end: float = 2.0, ratio: float = 1.0, tokens: int = 10) -> dict:
        return {"text": text, "start": start, "end": end, "compression_ratio": ratio, "tokens": [0] * tokens}

    ok = [row(" What is the capital of France?", end=7.0)]  # a late end time alone is only clamped
    assert not whisper._degenerate(ok, 1.7, cap=50)
    looped = " How do I make a cup of tea? How do I make a cup of tea? How do I"
    assert whisper._degenerate([row(looped)], 1.7, cap=60)
    assert whisper._degenerate([row(" Moon."), row(" Moon.", 1.0, 2.0)], 1.5, cap=50)
    assert whisper._degenerate([row(" Why is the sky blue?"), row(" Blue.", 2.0, 3.0)], 1.5, cap=50)
    assert whisper._degenerate([row(" a b c", ratio=3.1)], 1.5, cap=50)
    assert whisper._degenerate([row(" a b c", tokens=49)], 1.5, cap=50)
    # People repeat a word or two, not four in a row.
    assert not whisper._repeats_itself(words("no no i said the the red one"))
    assert whisper._repeats_itself(words("tell me about the moon tell me about the moon"))


def test_content_frames_finds_the_end_of_the_audio_in_a_padded_window() -> None:
    features = np.zeros((80, 3000), dtype=np.float32)
    features[:, :250] = -0.7  # log-mel of quiet audio is never exactly 0 in every bin
    features[3, 250:260] = 0.2
    assert whisper._content_frames(features) == 260
    assert whisper._content_frames(features[None]) == 260
    assert whisper._content_frames(np.zeros((80, 3000), dtype=np.float32)) == 0
