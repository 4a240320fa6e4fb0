"""Builds backends, deployments and aliases from the model catalogue (config → live objects)."""

from __future__ import annotations

from hearth.config import BackendConfig, ModelsConfig
from hearth.gateway.backends.base import Backend
from hearth.gateway.deployment import Deployment
from hearth.gateway.limiter import PriorityLimiter
from hearth.gateway.router import Alias


def build_backend(
    name: str, config: BackendConfig, built: dict[str, Backend], *, llm_threads: int
) -> Backend:
    # Embedded engines are imported only when configured, so a gateway of remote backends never loads
    # llama.cpp or onnxruntime.
    if config.type == "openai":
        from hearth.gateway.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(name, config)
    if config.type == "llama_cpp":
        from hearth.gateway.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(name, config, threads=config.threads or llm_threads)
    if config.type == "onnx_embedding":
        from hearth.gateway.backends.onnx_embedding import OnnxEmbeddingBackend

        return OnnxEmbeddingBackend(name, config)
    if config.type == "embedding_rerank":
        from hearth.gateway.backends.embedding_rerank import EmbeddingRerankBackend

        return EmbeddingRerankBackend(name, built[config.embedder])  # type: ignore[index]
    if config.type == "cross_encoder":
        from hearth.gateway.backends.cross_encoder import CrossEncoderBackend

        return CrossEncoderBackend(name, config)
    if config.type == "whisper":
        from hearth.gateway.backends.whisper import WhisperBackend

        return WhisperBackend(name, config, threads=config.threads or 2)
    if config.type == "piper":
        from hearth.gateway.backends.piper import PiperBackend

        return PiperBackend(name, config)
    raise ValueError(f"unknown backend type {config.type!r}")


def build_backends(
    models: ModelsConfig, *, llm_threads: int, reuse: dict[str, Backend] | None = None
) -> dict[str, Backend]:
    """Backends that some alias uses, plus the embedders they depend on; dependencies first. Those in
    `reuse` (running, with the same configuration) are taken as they are."""
    reuse = reuse or {}
    needed = {d.backend for a in models.aliases.values() for d in a.deployments}
    for name in list(needed):
        if models.backends[name].embedder:
            needed.add(models.backends[name].embedder)  # type: ignore[arg-type]
    ordered = sorted(needed, key=lambda n: models.backends[n].type == "embedding_rerank")
    built: dict[str, Backend] = {}
    for name in ordered:
        config = models.backends[name]
        # A reranker over a rebuilt embedder must be rebuilt too: it holds the embedder object.
        keep = name in reuse and not (
            config.embedder and built.get(config.embedder) is not reuse.get(config.embedder)
        )
        built[name] = reuse[name] if keep else build_backend(name, config, built, llm_threads=llm_threads)
    return built


def build_aliases(
    models: ModelsConfig,
    backends: dict[str, Backend],
    *,
    previous: dict[tuple[Backend, str | None], Deployment] | None = None,
) -> dict[str, Alias]:
    """Aliases with their deployments. A (backend, model) pair is one deployment shared by every alias that
    names it, so its health and its slots are shared too; an engine with a limit of its own (an embedded
    LLM) shares one set of slots across all its deployments. A deployment in `previous` (the same backend
    object, model and settings) is kept, with its health and slots, so a change elsewhere resets nothing."""
    previous = previous or {}
    deployments: dict[tuple[str, str | None], Deployment] = {}
    engine_limiters: dict[str, PriorityLimiter] = {}
    aliases: dict[str, Alias] = {}
    for alias_name, alias_cfg in models.aliases.items():
        groups: dict[int, list[Deployment]] = {}
        for dep_cfg in alias_cfg.deployments:
            backend = backends[dep_cfg.backend]
            key = (dep_cfg.backend, dep_cfg.model)
            deployment = deployments.get(key)
            old = previous.get((backend, dep_cfg.model))
            if deployment is None and old is not None and old.config == dep_cfg:
                deployment = deployments[key] = old
                if backend.max_concurrency is not None:
                    engine_limiters.setdefault(dep_cfg.backend, old.limiter)
            if deployment is None:
                if backend.max_concurrency is not None:
                    # The engine's slots outlive a change of its deployments: it still runs one at a time.
                    shared = next((d.limiter for d in previous.values() if d.backend is backend), None)
                    limiter = engine_limiters.setdefault(
                        dep_cfg.backend, shared or PriorityLimiter(backend.max_concurrency)
                    )
                else:
                    limiter = PriorityLimiter(dep_cfg.max_concurrency)
                label = dep_cfg.backend if dep_cfg.model is None else f"{dep_cfg.backend}/{dep_cfg.model}"
                deployment = Deployment(label, backend, dep_cfg.model, dep_cfg, limiter)
                deployments[key] = deployment
            groups.setdefault(dep_cfg.priority, []).append(deployment)
        aliases[alias_name] = Alias(
            alias_name, alias_cfg.kind, alias_cfg.description, [groups[p] for p in sorted(groups)]
        )
    return aliases
