"""Reranking with an ONNX cross-encoder (e.g. ms-marco-MiniLM exported to ONNX), in process.

Each (query, document) pair is encoded together (`[CLS] query [SEP] document [SEP]`, token types 0 then 1)
and the model's single logit is the relevance; we report its sigmoid so scores fall in (0, 1) as rerank
APIs promise, which keeps the order. No package ships such weights: configure model_path.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import BackendConfig
from hearth.gateway.backends.base import BackendError, RerankResult
from hearth.gateway.backends.onnx_embedding import (
    DEFAULT_THREADS,
    check_inputs,
    length_batches,
    load_tokenizer,
    make_session,
    pad_batch,
)


class CrossEncoderBackend:
    """A `RerankBackend` over an ONNX cross-encoder: inputs input_ids, attention_mask[, token_type_ids];
    output logits [batch, 1] (or [batch])."""

    max_concurrency: int | None = 2

    def __init__(
        self, name: str, config: BackendConfig, *, threads: int | None = None, model_name: str | None = None
    ) -> None:
        if not config.model_path:
            raise BackendError("a cross_encoder backend needs model_path", status=503, retryable=False)
        self.name = name
        self.config = config
        self.model_path = Path(config.model_path)
        self.tokenizer_path = Path(config.tokenizer_path or self.model_path.with_name("tokenizer.json"))
        self.threads = threads or config.threads or DEFAULT_THREADS
        # The folder is usually named after the model (ms-marco-MiniLM-L-6-v2/model.onnx).
        self.model_name = model_name or self.model_path.parent.name or self.model_path.stem
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: list[str] = []
        self._load_lock = threading.Lock()

    async def start(self) -> None:
        await asyncio.to_thread(self.load)

    def load(self) -> None:
        with self._load_lock:
            if self._session is not None:
                return
            tokenizer = load_tokenizer(self.tokenizer_path, self.config.max_length)
            session = make_session(self.model_path, self.threads)
            self._input_names = check_inputs(session, self.model_path)
            self._tokenizer = tokenizer
            self._session = session

    async def close(self) -> None:
        self._session = None
        self._tokenizer = None

    async def rerank(self, query: str, documents: list[str], model: str | None) -> RerankResult:
        scores, tokens = await asyncio.to_thread(self.score_sync, query, documents)
        return RerankResult(scores=scores.tolist(), prompt_tokens=tokens, model=model or self.model_name)

    def score_sync(self, query: str, documents: list[str]) -> tuple[np.ndarray, int]:
        """Relevance in (0, 1) per document, in input order, and the tokens read. Blocking."""
        session, tokenizer = self._session, self._tokenizer
        if session is None:
            raise BackendError(f"rerank backend {self.name!r} is not started", status=503)
        if not documents:
            return np.zeros(0, dtype=np.float32), 0
        encodings = tokenizer.encode_batch([(query, doc) for doc in documents])
        tokens = sum(len(e.ids) for e in encodings)
        logits = np.empty(len(documents), dtype=np.float32)
        for batch in length_batches(encodings, max(1, self.config.batch_size)):
            feed = pad_batch([encodings[i] for i in batch], self._input_names)
            out = np.asarray(session.run(None, feed)[0], dtype=np.float32)
            if out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
            if out.shape != (len(batch),):
                raise BackendError(
                    f"{self.model_path}: expected one logit per pair, got shape {out.shape}", retryable=False
                )
            logits[batch] = out
        return 1.0 / (1.0 + np.exp(-logits)), tokens
