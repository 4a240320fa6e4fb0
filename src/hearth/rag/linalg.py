"""Matrix products of the query path, computed on the calling thread without BLAS's thread pool.

numpy hands `@` to OpenBLAS, which splits large enough products across its own threads: the exact dense
search (~2k x 384) is one, the reranker's similarities (50 x 384 x 50) and feedback's re-scoring
(~200 x 384) may be. On 2 cores, right after the query's embedding has kept both busy, such a product
waited for a BLAS thread to get a core: the 1,882-row product (and its top 100) took 1.0-2.8 ms p50
instead of 0.02 ms alone, and 0.18-0.26 ms with OpenBLAS held to one thread (CISI, load average 3-4,
docs/rag.md). `np.einsum` without `optimize` never calls BLAS: it runs its own SIMD loop here, 0.1 ms for
that product whatever the other threads do."""

from __future__ import annotations

import numpy as np


def dot_rows(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector (float32) on this thread."""
    return np.einsum("ij,j->i", matrix, np.asarray(vector, dtype=matrix.dtype))


def gram(matrix: np.ndarray) -> np.ndarray:
    """matrix @ matrix.T (float32) on this thread."""
    return np.einsum("ik,jk->ij", matrix, matrix)
