"""What a planner row must name that a benchmark cannot measure: the real model, its quantization and
the hardware.

A row labelled with an alias (`chat`) or a guessed `fp16`/`cpu` would teach the planner something false, so
rows are saved only when all three are known: from the command's flags, else from the target's `/v1/models`
card for the model (fields a server may publish: `model_id`/`hf_model_id`/`root`, `quantization`, `gpu`/
`hardware`, at the top level or under `metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MODEL_KEYS = ("model_id", "hf_model_id", "root")
_QUANT_KEYS = ("quantization", "quant")
_GPU_KEYS = ("gpu", "hardware")


@dataclass(frozen=True)
class RowLabels:
    model_id: str | None = None
    quantization: str | None = None
    gpu: str | None = None

    def missing(self) -> list[str]:
        """The flags still needed, as a user would type them."""
        return [
            flag
            for flag, value in (
                ("--model-id", self.model_id),
                ("--quantization", self.quantization),
                ("--gpu", self.gpu),
            )
            if not value
        ]

    def or_else(self, other: RowLabels) -> RowLabels:
        return RowLabels(
            model_id=self.model_id or other.model_id,
            quantization=self.quantization or other.quantization,
            gpu=self.gpu or other.gpu,
        )


def _first(card: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for where in (card, card.get("metadata") if isinstance(card.get("metadata"), dict) else {}):
        for key in keys:
            value = where.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def labels_from_models(listing: Any, model: str) -> RowLabels:
    """The labels a `/v1/models` listing publishes for `model` (nothing when it publishes none)."""
    data = listing.get("data") if isinstance(listing, dict) else None
    for card in data if isinstance(data, list) else []:
        if isinstance(card, dict) and card.get("id") == model:
            root = _first(card, _MODEL_KEYS)
            # vLLM's `root` is the path or repo it loaded: only a repo-like id ("org/name") names a model.
            model_id = root if root and "/" in root and not root.startswith(("/", ".")) else None
            return RowLabels(
                model_id=model_id, quantization=_first(card, _QUANT_KEYS), gpu=_first(card, _GPU_KEYS)
            )
    return RowLabels()
