"""Tokenizer files of the gateway's models, for contexts that size text in a model's own tokens."""

from __future__ import annotations

from pathlib import Path


def embedding_tokenizer_path() -> Path:
    """The tokenizer.json of the default embedding model (raises when its packages are not installed)."""
    from hearth.gateway.backends.onnx_embedding import default_model_files

    return default_model_files()[1]
