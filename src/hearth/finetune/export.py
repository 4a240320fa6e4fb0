"""A trained LoRA adapter → a GGUF adapter file that llama.cpp applies over the base GGUF at load time.

This is llama.cpp's `convert_lora_to_gguf.py` for the one architecture Hearth fine-tunes (llama: SmolLM2),
written with the `gguf` package: that script needs the llama.cpp source tree (the llama-cpp-python wheel does
not ship it) and a Hugging Face config folder. Three things must match llama.cpp exactly:

- metadata: `general.architecture` of the base, `general.type = adapter`, `adapter.type = lora`,
  `adapter.lora.alpha` (llama.cpp scales by alpha / rank, as PEFT does);
- tensor names: `blk.N.attn_q.weight.lora_a` / `.lora_b` for each adapted weight;
- the layout of q and k: llama.cpp stores them with their rows permuted for its RoPE (transformers undoes
  that permutation when it reads the GGUF), so an adapter's output rows (B) get the same permutation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Hugging Face llama module names → llama.cpp tensor names.
TENSOR_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


class ExportError(ValueError):
    """An adapter that cannot be written for llama.cpp (a module it has no tensor for, say)."""


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row order for q/k (convert_hf_to_gguf's LlamaModel.permute): within each head, the two
    rotary halves are interleaved."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensors(
    state: Mapping[str, np.ndarray], *, n_head: int, n_head_kv: int
) -> list[tuple[str, np.ndarray]]:
    """PEFT's adapter tensors (`base_model.model.model.layers.N.<module>.lora_A.weight`, A: rank × in,
    B: out × rank) as llama.cpp's (name, float32 array) pairs, in a stable order."""
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        parts = key.split(".")
        try:
            at = parts.index("layers")
            layer = int(parts[at + 1])
            which = parts[-2]  # lora_A | lora_B
            module = ".".join(parts[at + 2 : -2])
        except (ValueError, IndexError):
            raise ExportError(
                f"unexpected adapter tensor {key!r}: only per-layer LoRA weights export"
            ) from None
        if which not in ("lora_A", "lora_B") or module not in TENSOR_NAMES:
            raise ExportError(
                f"adapter tensor {key!r} has no llama.cpp counterpart; LoRA may target "
                + ", ".join(m.split(".")[-1] for m in TENSOR_NAMES)
            )
        name = f"blk.{layer}.{TENSOR_NAMES[module]}.weight"
        pairs.setdefault(name, {})[which] = np.asarray(value, dtype=np.float32)
    out: list[tuple[str, np.ndarray]] = []
    for name in sorted(pairs, key=_tensor_order):
        pair = pairs[name]
        if set(pair) != {"lora_A", "lora_B"}:
            raise ExportError(f"{name}: the adapter has only {', '.join(pair)}")
        a, b = pair["lora_A"], pair["lora_B"]
        if name.endswith("attn_q.weight"):
            b = permute_rows(b, n_head)
        elif name.endswith("attn_k.weight"):
            b = permute_rows(b, n_head_kv)
        out.append((f"{name}.lora_a", np.ascontiguousarray(a)))
        out.append((f"{name}.lora_b", np.ascontiguousarray(b)))
    if not out:
        raise ExportError("the adapter has no LoRA tensors")
    return out


def _tensor_order(name: str) -> tuple[int, str]:
    return int(name.split(".")[1]), name


def write_adapter_gguf(
    path: Path,
    state: Mapping[str, Any],
    *,
    alpha: float,
    n_head: int,
    n_head_kv: int,
    architecture: str = "llama",
    name: str = "",
) -> Path:
    """Write PEFT's adapter tensors (`state`: name → array or torch tensor) as a GGUF LoRA adapter."""
    import gguf

    arrays = {k: v.detach().float().cpu().numpy() if hasattr(v, "detach") else v for k, v in state.items()}
    tensors = gguf_tensors(arrays, n_head=n_head, n_head_kv=n_head_kv)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for tensor_name, data in tensors:
        writer.add_tensor(tensor_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
