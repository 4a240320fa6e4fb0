"""Audio in and out with PyAV (shipped with faster-whisper, so no ffmpeg binary is needed).

Uploads are identified by their real container, never by file name or declared content type, and are
decoded to the 16 kHz mono float32 samples Whisper expects. Synthesized speech (16-bit PCM) is encoded
to wav, mp3, opus, flac or left as raw pcm, incrementally so it can be streamed sentence by sentence.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av
import numpy as np

from hearth.platform.errors import HearthError

WHISPER_RATE = 16_000

# PyAV's demuxer name → the format name clients use.
_CONTAINERS = {
    "wav": "wav",
    "mp3": "mp3",
    "matroska,webm": "webm",
    "ogg": "ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "flac": "flac",
}
TRANSCRIPTION_FORMATS = frozenset({"wav", "webm", "mp3", "ogg", "m4a", "flac"})

# Speech output: format → (media type, PyAV muxer, codec, codec sample rate or None to keep the input's).
SPEECH_FORMATS: dict[str, tuple[str, str | None, str | None, int | None]] = {
    "wav": ("audio/wav", None, None, None),
    "pcm": ("audio/pcm", None, None, None),
    "mp3": ("audio/mpeg", "mp3", "libmp3lame", None),
    "opus": ("audio/ogg", "ogg", "libopus", 48_000),
    "flac": ("audio/flac", "flac", "flac", None),
}


@dataclass(frozen=True)
class DecodedAudio:
    format: str  # wav | mp3 | webm | ogg | m4a | flac
    samples: np.ndarray  # float32, mono, 16 kHz
    duration_s: float

    @property
    def duration_ms(self) -> int:
        return round(self.duration_s * 1000)


def _bad_audio(message: str, code: str = "invalid_audio") -> HearthError:
    return HearthError(400, message, param="file", code=code)


def _too_long(seconds: float, limit: float) -> HearthError:
    return HearthError(
        413,
        f"the audio is {seconds:.0f} s long; the limit is {limit:.0f} s",
        param="file",
        code="audio_too_long",
    )


def decode_upload(data: bytes, *, allowed: frozenset[str], max_seconds: float) -> DecodedAudio:
    """Identify the container, enforce the duration cap, and decode to Whisper's samples; 4xx otherwise."""
    if not data:
        raise _bad_audio("the audio file is empty", code="empty_audio")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError):
        raise _bad_audio("the file is not audio in a format Hearth can read") from None
    with container:
        if not container.streams.audio:  # an image, a video without sound, a text ffmpeg took for art…
            raise _bad_audio("the file contains no audio")
        fmt = _CONTAINERS.get(container.format.name)
        if fmt is None or fmt not in allowed:
            found = fmt or container.format.name
            raise HearthError(
                400,
                f"unsupported audio format '{found}'; use one of: {', '.join(sorted(allowed))}",
                param="file",
                code="unsupported_audio_format",
            )
        stream = container.streams.audio[0]
        # Trust the header's duration only to reject early; the decoded length is checked below anyway
        # (streamed webm and some mp3s carry none).
        if container.duration is not None and container.duration / av.time_base > max_seconds:
            raise _too_long(container.duration / av.time_base, max_seconds)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=WHISPER_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int(max_seconds * WHISPER_RATE)
        try:
            for frame in container.decode(stream):
                frame.pts = None  # the resampler's timestamps are not needed, and bad ones make it fail
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    total += len(chunk)
                    if total > limit:
                        raise _too_long(total / WHISPER_RATE, max_seconds)
                    chunks.append(chunk)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError, OSError):
            raise _bad_audio(f"the {fmt} audio is corrupt and cannot be decoded") from None
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if len(samples) == 0:
        raise _bad_audio("the audio contains no samples", code="empty_audio")
    return DecodedAudio(fmt, samples, len(samples) / WHISPER_RATE)


def wav_header(rate: int, data_bytes: int | None) -> bytes:
    """A 16-bit mono WAV header. Unknown length (a stream): the sizes say 'to the end', as ffmpeg writes."""
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )


def pcm_to_wav(pcm: bytes, rate: int) -> bytes:
    return wav_header(rate, len(pcm)) + pcm


def wav_to_pcm(data: bytes) -> tuple[bytes, int]:
    """(16-bit mono PCM, sample rate) of a WAV as Hearth's speech backends write them."""
    with io.BytesIO(data) as buf, av.open(buf, mode="r") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        parts = [
            out.to_ndarray().tobytes()
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        return b"".join(parts), stream.rate


class _Sink:
    """A write-only file for PyAV's muxer: what it writes is drained after every frame, for streaming."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class SpeechEncoder:
    """Encodes 16-bit mono PCM chunks as they come; `feed` and `finish` return the bytes ready to send."""

    def __init__(self, fmt: str, rate: int, *, streaming: bool = True) -> None:
        if fmt not in SPEECH_FORMATS:
            raise ValueError(f"unsupported speech format {fmt!r}")
        self.format = fmt
        self.rate = rate
        self.media_type, muxer, codec, codec_rate = SPEECH_FORMATS[fmt]
        self._header_sent = False
        self._streaming = streaming
        self._pcm: list[bytes] = []  # a non-streamed wav needs its length up front
        self._container = None
        if muxer is not None:
            self._sink = _Sink()
            self._container = av.open(self._sink, mode="w", format=muxer)
            self._stream = self._container.add_stream(codec, rate=codec_rate or rate, layout="mono")
            self._pts = 0

    def feed(self, pcm: bytes) -> bytes:
        if not pcm:
            return b""
        if self.format == "pcm":
            return pcm
        if self.format == "wav":
            if not self._streaming:
                self._pcm.append(pcm)
                return b""
            head = b"" if self._header_sent else wav_header(self.rate, None)
            self._header_sent = True
            return head + pcm
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += samples.shape[1]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        if self.format == "pcm":
            return b""
        if self.format == "wav":
            if not self._streaming:
                return pcm_to_wav(b"".join(self._pcm), self.rate)
            return b"" if self._header_sent else wav_header(self.rate, 0)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain()


def encode_pcm(pcm: bytes, rate: int, fmt: str) -> bytes:
    """A whole clip in `fmt`."""
    encoder = SpeechEncoder(fmt, rate, streaming=False)
    return encoder.feed(pcm) + encoder.finish()


def probe_duration(data: bytes) -> float:
    """Seconds of audio in an encoded clip (decodes it: exact, and proves it is valid)."""
    with io.BytesIO(data) as buf, av.open(buf, mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate
