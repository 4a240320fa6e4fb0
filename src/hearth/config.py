"""Configuration: `HEARTH_*` environment variables plus one YAML file for models and backends.

Environment variables hold deployment facts (where data lives, which servers to use); `hearth.yaml`
holds the model catalogue (aliases → ordered deployments on named backends). Anything absent from
the YAML falls back to `defaults.yaml` shipped in the package, so a bare machine runs embedded models.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")

Priority = Literal["standard", "premium"]


class BackendConfig(BaseModel):
    """One engine: an embedded model or a remote OpenAI-compatible server."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["llama_cpp", "onnx_embedding", "embedding_rerank", "cross_encoder", "openai"]
    # llama_cpp
    model_path: str | None = None
    n_ctx: int = 4096
    threads: int | None = None
    # onnx_embedding / cross_encoder
    tokenizer_path: str | None = None
    max_length: int = 256
    batch_size: int = 32
    # embedding_rerank: the backend whose embeddings score the documents
    embedder: str | None = None
    # openai
    base_url: str | None = None
    api_key: str | None = None
    max_connections: int = 512

    @field_validator("api_key")
    @classmethod
    def _expand_env(cls, value: str | None) -> str | None:
        # `env:NAME` keeps secrets out of the YAML file.
        if value and value.startswith("env:"):
            return os.environ.get(value[4:], "")
        return value

    @model_validator(mode="after")
    def _check_required(self) -> BackendConfig:
        if self.type == "openai" and not self.base_url:
            raise ValueError("an openai backend needs base_url")
        if self.type == "embedding_rerank" and not self.embedder:
            raise ValueError("an embedding_rerank backend needs embedder (the name of an embedding backend)")
        if self.type == "cross_encoder" and not self.model_path:
            raise ValueError("a cross_encoder backend needs model_path (an ONNX cross-encoder)")
        return self


class DeploymentConfig(BaseModel):
    """One place an alias can be served: a backend and the model name it knows."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    model: str | None = None  # the upstream's model name; embedded backends ignore it
    priority: int = 0  # lower is tried first; equal priorities share load (least busy wins)
    max_concurrency: int | None = None  # None: unlimited for remote, 1 for embedded LLMs
    timeout: float = 120.0  # seconds: whole request, or first byte and each gap when streaming
    max_retries: int = 2  # retries on this deployment before falling back to the next
    cooldown: float = 30.0  # seconds a failing deployment is skipped
    failures_before_cooldown: int = 3  # consecutive failures that trigger a cooldown


class AliasConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["chat", "embedding", "rerank"]
    description: str = ""
    deployments: Annotated[list[DeploymentConfig], Field(min_length=1)]


class ModelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backends: dict[str, BackendConfig] = {}
    aliases: dict[str, AliasConfig] = {}

    @model_validator(mode="after")
    def _check_refs(self) -> ModelsConfig:
        for name, alias in self.aliases.items():
            for dep in alias.deployments:
                if dep.backend not in self.backends:
                    raise ValueError(f"alias {name!r} uses unknown backend {dep.backend!r}")
        for name, backend in self.backends.items():
            if backend.embedder and backend.embedder not in self.backends:
                raise ValueError(f"backend {name!r} uses unknown embedder {backend.embedder!r}")
        return self


def load_models_config(path: Path | None) -> ModelsConfig:
    """Merge the package defaults with the user's YAML: user backends and aliases win by name.
    `include_defaults: false` in the YAML drops the built-in embedded catalogue (a pure proxy)."""
    user: dict[str, Any] = {}
    if path is not None and path.exists():
        user = yaml.safe_load(path.read_text()) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    merged: dict[str, Any] = {"backends": {}, "aliases": {}}
    if user.pop("include_defaults", True):
        merged = yaml.safe_load(DEFAULTS_FILE.read_text())
    if user:
        unknown = set(user) - {"backends", "aliases"}
        if unknown:
            raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
        for section in ("backends", "aliases"):
            merged.setdefault(section, {}).update(user.get(section) or {})
    return ModelsConfig.model_validate(merged)


class Settings(BaseSettings):
    """Process settings from `HEARTH_*` variables (and a `.env` file if present)."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    config_file: Path | None = None  # default: ./hearth.yaml when it exists
    database_url: str | None = None  # default: SQLite in data_dir
    nats_url: str | None = None
    nats_prefix: str = "hearth"  # subjects hearth.<context>.<Type>, streams HEARTH_<CONTEXT>
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    llm_threads: int = 1
    max_request_bytes: int = 8 * 1024 * 1024
    # Cap for file uploads (documents, audio) on the routes listed in `upload_path_prefixes`.
    max_upload_bytes: int = 100 * 1024 * 1024
    upload_path_prefixes: tuple[str, ...] = ("/api/rag/", "/v1/audio/", "/api/voice")
    auth_cache_seconds: float = 2.0
    default_rpm: int | None = None  # per-key request limit when a key sets none
    default_tpm: int | None = None  # per-key token limit when a key sets none
    # Publish InferenceCompleted/InferenceFailed to the bus for every gateway request (a durable usage trail).
    # Off by default: two outbox writes per request cost ~10% of gateway throughput; /metrics counts the same.
    gateway_events: bool = False
    # Retention sweeper period; 0 disables the background loop (tests call run_once with their own clock).
    retention_sweep_seconds: float = 60.0

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the common spellings and pick the async drivers Hearth ships.
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hearth.db').resolve()}"

    @cached_property
    def models(self) -> ModelsConfig:
        path = self.config_file
        if path is None and Path("hearth.yaml").exists():
            path = Path("hearth.yaml")
        if path is not None and not path.exists():
            raise FileNotFoundError(f"HEARTH_CONFIG_FILE points at {path}, which does not exist")
        return load_models_config(path)
