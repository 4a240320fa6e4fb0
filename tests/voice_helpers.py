"""Real speech for the speech and voice tests: made by the piper command itself (independent of the backend
under test), and packed into the containers clients send, with PyAV."""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import av
import numpy as np

from hearth.gateway.audio import pcm_to_wav
from hearth.gateway.backends.piper import default_voice
from tests.harness import RunningHearth, run_hearth

PHRASES = (
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Tell me three short facts about the moon.",
)


@cache
def speech_server() -> RunningHearth:
    """One Hearth on the embedded models shared by the speech and voice test modules (starting the models
    costs seconds of CPU; module-scoped fixtures of two modules cannot share an instance). Stopped at exit."""
    stack = contextlib.ExitStack()
    data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hearth-speech-")))
    server = stack.enter_context(
        run_hearth(
            data,
            transcription_max_seconds=600,
            voice_max_reply_tokens=60,
            voice_temperature=0.0,  # the same question gets the same answer: tests are repeatable
            voice_warmup=True,
        )
    )
    atexit.register(_stop, stack)
    return server


def _stop(stack: contextlib.ExitStack) -> None:
    # pytest has closed the captured streams by now: the server's shutdown logs would only raise.
    logging.disable(logging.CRITICAL)
    stack.close()


@cache
def _spoken() -> dict[str, tuple[bytes, int]]:
    """Every phrase spoken once, in one piper run (loading the voice is the slow part)."""
    piper = str(Path(sys.executable).with_name("piper"))
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            # No generator noise: the same clip every run, so the transcription tests are repeatable. With
            # piper's default noise every synthesis differs, and tiny.en mishears about one clip in 70 with
            # either encoder window (measured on 72 clips: "quick" -> "quit", "three" -> "through").
            [
                piper,
                "--model",
                str(default_voice()),
                "--output-dir",
                out,
                "--noise-scale",
                "0",
                "--noise-w-scale",
                "0",
            ],
            input="\n".join(PHRASES).encode(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        paths = sorted(Path(out).glob("*.wav"), key=lambda p: int(p.stem))
        assert len(paths) == len(PHRASES)
        clips = {}
        for phrase, path in zip(PHRASES, paths, strict=True):
            with av.open(str(path)) as c:
                stream = c.streams.audio[0]
                pcm = b"".join(f.to_ndarray().tobytes() for f in c.decode(stream))
                clips[phrase] = (pcm, stream.rate)
        return clips


def speech(phrase: str, fmt: str = "wav") -> bytes:
    pcm, rate = _spoken()[phrase]
    return pack(pcm, rate, fmt)


def pcm_of(phrase: str) -> tuple[bytes, int]:
    """One phrase as 16-bit mono PCM and its sample rate (to pad or mix before packing)."""
    return _spoken()[phrase]


def pack(pcm: bytes, rate: int, fmt: str) -> bytes:
    """16-bit mono PCM in a container: wav, mp3, webm (opus), ogg (opus), m4a (aac), flac."""
    if fmt == "wav":
        return pcm_to_wav(pcm, rate)
    muxer, codec, codec_rate = {
        "mp3": ("mp3", "libmp3lame", rate),
        "webm": ("webm", "libopus", 48_000),
        "ogg": ("ogg", "libopus", 48_000),
        "m4a": ("ipod", "aac", rate),
        "flac": ("flac", "flac", rate),
    }[fmt]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer) as c:
        stream = c.add_stream(codec, rate=codec_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return buf.getvalue()


def silence(seconds: float, rate: int = 16_000) -> bytes:
    return pcm_to_wav(bytes(int(seconds * rate) * 2), rate)


def noise(seconds: float, rate: int = 16_000) -> bytes:
    rng = np.random.default_rng(7)
    samples = (rng.normal(0, 0.05, int(seconds * rate)) * 32767).astype("<i2")
    return pcm_to_wav(samples.tobytes(), rate)


def two_hour_mp3() -> bytes:
    """A 2-hour mp3 in about 7 MB: the raw frames of 2 s of encoded silence (no Xing header, so the
    length is read from the bitrate, as for any streamed mp3), repeated."""
    ctx = av.CodecContext.create("libmp3lame", "w")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    ctx.format = "s16p"
    ctx.bit_rate = 8000
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 16_000), "<i2"), format="s16p", layout="mono")
    frame.sample_rate = 8000
    frame.pts = 0
    packets = [bytes(p) for p in ctx.encode(frame)] + [bytes(p) for p in ctx.encode(None)]
    block = b"".join(packets[2:-2])  # steady-state frames only
    return block * (7200 * 8000 // 8 // len(block) + 1)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())
