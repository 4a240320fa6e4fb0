"""The pieces under the speech routes, without a server: container detection and caps, streamed encoding,
and cutting a streamed reply into sentences."""

from __future__ import annotations

import numpy as np
import pytest

from hearth.gateway.audio import (
    TRANSCRIPTION_FORMATS,
    SpeechEncoder,
    decode_upload,
    encode_pcm,
    probe_duration,
)
from hearth.gateway.sentences import SentenceBuffer, split_sentences
from hearth.platform.errors import HearthError
from tests.voice_helpers import pack

RATE = 22_050
TONE = (np.sin(np.arange(RATE) * 2 * np.pi * 330 / RATE) * 9000).astype("<i2").tobytes()  # 1 s


@pytest.mark.parametrize("fmt", ["wav", "mp3", "webm", "ogg", "m4a", "flac"])
def test_container_is_recognised_by_content_and_decoded_for_whisper(fmt) -> None:
    audio = decode_upload(pack(TONE, RATE, fmt), allowed=TRANSCRIPTION_FORMATS, max_seconds=60)
    assert audio.format == fmt
    assert audio.samples.dtype == np.float32 and abs(audio.duration_s - 1.0) < 0.1
    assert 0.1 < float(np.abs(audio.samples).max()) <= 1.0


def test_allowed_formats_and_duration_cap() -> None:
    with pytest.raises(HearthError) as err:
        decode_upload(pack(TONE, RATE, "ogg"), allowed=frozenset({"wav", "webm", "mp3"}), max_seconds=60)
    assert (
        err.value.status == 400
        and err.value.code == "unsupported_audio_format"
        and "ogg" in err.value.message
    )
    with pytest.raises(HearthError) as err:
        decode_upload(pack(TONE * 3, RATE, "wav"), allowed=TRANSCRIPTION_FORMATS, max_seconds=2)
    assert err.value.status == 413 and err.value.code == "audio_too_long"


def test_cap_holds_when_the_header_has_no_length() -> None:
    # A streamed WAV says "until the end": only decoding finds the length, and it stops at the cap.
    streamed = SpeechEncoder("wav", RATE).feed(TONE * 3)
    with pytest.raises(HearthError) as err:
        decode_upload(streamed, allowed=TRANSCRIPTION_FORMATS, max_seconds=2)
    assert err.value.status == 413


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_streamed_and_whole_encodings_decode_to_the_right_length(fmt) -> None:
    encoder = SpeechEncoder(fmt, RATE)
    streamed = encoder.feed(TONE) + encoder.feed(TONE) + encoder.finish()
    assert abs(probe_duration(streamed) - 2.0) < 0.1
    assert abs(probe_duration(encode_pcm(TONE, RATE, fmt)) - 1.0) < 0.1


def test_split_sentences_keeps_abbreviations_and_numbers() -> None:
    text = "Hello there. Dr. Smith paid 3.5 dollars! Is that a lot?\nYes, e.g. for tea… — "
    assert split_sentences(text) == [
        "Hello there.",
        "Dr. Smith paid 3.5 dollars!",
        "Is that a lot?",
        "Yes, e.g. for tea…",  # the dash alone has nothing to say
    ]
    assert split_sentences("... — !") == []


def test_sentence_buffer_on_a_token_stream() -> None:
    buffer = SentenceBuffer(first_clause_words=6)
    tokens = [
        "Well,",
        "the",
        "moon",
        "is",
        "about",
        "384,400",
        "kilometres",
        "from",
        "us,",
        "on",
        "average.",
        "It",
        "has",
        "no",
        "air.",
        "And",
    ]
    out: list[str] = []
    for i, token in enumerate(tokens):
        out += buffer.feed(token if i == 0 else " " + token)
    assert out == ["Well, the moon is about 384,400 kilometres from us,", "on average.", "It has no air."]
    assert buffer.flush() == ["And"]


def stream(buffer: SentenceBuffer, text: str) -> list[str]:
    """Feed `text` word by word, as an LLM streams it (each token after the first with its leading space)."""
    out: list[str] = []
    for i, token in enumerate(text.split(" ")):
        out += buffer.feed(token if i == 0 else " " + token)
    return out + buffer.flush()


def test_first_piece_ends_at_a_dash_or_before_a_clause_word_once_long_enough() -> None:
    assert stream(
        SentenceBuffer(first_clause_words=6),
        "The sky looks blue to us because air scatters blue light. It is simple.",
    ) == ["The sky looks blue to us", "because air scatters blue light.", "It is simple."]
    assert stream(
        SentenceBuffer(first_clause_words=6), "Tea is best with fresh water — boil it once, then pour."
    ) == ["Tea is best with fresh water", "boil it once, then pour."]
    # Too short a head, "and" (it joins words as often as clauses), a hyphenated word: no early cut.
    short = stream(SentenceBuffer(first_clause_words=6), "Sure, but why? Because.")
    assert short == ["Sure, but why?", "Because."]
    assert stream(
        SentenceBuffer(first_clause_words=6), "For dinner you could try classic fish and chips tonight."
    ) == ["For dinner you could try classic fish and chips tonight."]
    assert stream(
        SentenceBuffer(first_clause_words=6), "Sleeping well is a never-ending journey for many people."
    ) == ["Sleeping well is a never-ending journey for many people."]
    # Only the first piece is cut early; later sentences stay whole.
    assert stream(
        SentenceBuffer(first_clause_words=2), "Hi there. The sky looks blue to us because of the air."
    ) == ["Hi there.", "The sky looks blue to us because of the air."]
