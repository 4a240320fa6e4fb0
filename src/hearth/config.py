"""Configuration: `HEARTH_*` environment variables plus one YAML file for models and backends.

Environment variables hold deployment facts (where data lives, which servers to use); `hearth.yaml`
holds the model catalogue (aliases → ordered deployments on named backends). Anything absent from
the YAML falls back to `defaults.yaml` shipped in the package, so a bare machine runs embedded models.
"""

from __future__ import annotations

import difflib
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from hearth.home import default_config_file, hearth_home

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")

Priority = Literal["standard", "premium"]


class ConfigError(ValueError):
    """A mistake in the configuration, told in one line: the file, the key path and the fix."""


class BackendConfig(BaseModel):
    """One engine: an embedded model or a remote OpenAI-compatible server."""

    model_config = ConfigDict(extra="forbid")

    type: Literal[
        "llama_cpp", "onnx_embedding", "embedding_rerank", "cross_encoder", "openai", "whisper", "piper"
    ]
    # llama_cpp
    model_path: str | None = None
    n_ctx: int = 4096
    threads: int | None = None
    # llama_cpp: penalty on recently generated tokens (1.0: off), unless a request sets repetition_penalty;
    # a 135M model otherwise repeats one line until max_tokens.
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)
    # chat backends: end a reply that repeats one piece of text back to back (gateway.loops).
    stop_loops: bool = True
    # llama_cpp: a LoRA adapter in GGUF (`hearth finetune` writes one) applied over the model's weights, and
    # how strongly (1.0: as trained)
    lora_path: str | None = None
    lora_scale: float = Field(1.0, ge=0.0, le=4.0)
    # onnx_embedding / cross_encoder
    tokenizer_path: str | None = None
    max_length: int = 256
    batch_size: int = 32
    # whisper (model_path: a CTranslate2 Whisper folder) / piper (model_path: a voice .onnx)
    beam_size: int = 1
    vad_filter: bool = True
    short_window: bool = True  # whisper: encode a short clip in a window of its length, not 30 s (faster)
    command: str | None = None  # piper: the `piper` executable (default: the one next to Python)
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

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r} is not an http(s) URL; write it like http://127.0.0.1:11434/v1 (the part before "
                "/chat/completions)"
            )
        return value

    @model_validator(mode="after")
    def _check_required(self) -> BackendConfig:
        if self.type == "openai" and not self.base_url:
            raise ValueError("an openai backend needs base_url")
        if self.type == "embedding_rerank" and not self.embedder:
            raise ValueError("an embedding_rerank backend needs embedder (the name of an embedding backend)")
        if self.type == "cross_encoder" and not self.model_path:
            raise ValueError("a cross_encoder backend needs model_path (an ONNX cross-encoder)")
        if self.lora_path and self.type != "llama_cpp":
            raise ValueError("lora_path is for llama_cpp backends only (a LoRA adapter in GGUF)")
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

    kind: Literal["chat", "embedding", "rerank", "transcription", "speech"]
    description: str = ""
    deployments: Annotated[list[DeploymentConfig], Field(min_length=1)]


class ModelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backends: dict[str, BackendConfig] = {}
    aliases: dict[str, AliasConfig] = {}

    @model_validator(mode="after")
    def _check_refs(self) -> ModelsConfig:
        names = sorted(self.backends)
        for name, alias in self.aliases.items():
            for i, dep in enumerate(alias.deployments):
                if dep.backend not in self.backends:
                    raise ValueError(
                        f"aliases.{name}.deployments.{i}.backend: unknown backend {dep.backend!r}; fix: "
                        + _suggest(dep.backend, names).replace("valid keys", "backends")
                    )
        for name, backend in self.backends.items():
            if backend.embedder and backend.embedder not in self.backends:
                raise ValueError(
                    f"backends.{name}.embedder: unknown backend {backend.embedder!r}; fix: "
                    + _suggest(backend.embedder, names).replace("valid keys", "backends")
                )
        return self


# Top-level sections of hearth.yaml that belong to a context, not to the model catalogue.
OTHER_SECTIONS = ("mcp_servers",)  # agents: external MCP servers whose tools agents may call


def load_section(path: Path | None, section: str) -> Any:
    """One of OTHER_SECTIONS from the user's YAML (None when the file or the section is absent)."""
    if path is None or not path.exists():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return data.get(section) if isinstance(data, dict) else None


def load_models_raw(path: Path | None) -> dict[str, Any]:
    """The package defaults merged with the user's YAML, unvalidated: user backends and aliases win by name.
    `include_defaults: false` in the YAML drops the built-in embedded catalogue (a pure proxy)."""
    user: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(
                f"{path}:{where} not valid YAML ({problem}); fix: check the indentation and the quotes there"
            ) from None
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: expected a mapping (backends:, aliases:) at the top level")
    for section in OTHER_SECTIONS:  # read by their contexts (load_section), not part of the model catalogue
        user.pop(section, None)
    merged: dict[str, Any] = {"backends": {}, "aliases": {}}
    if user.pop("include_defaults", True):
        merged = yaml.safe_load(DEFAULTS_FILE.read_text())
    if user:
        unknown = set(user) - {"backends", "aliases"}
        if unknown:
            key = sorted(unknown)[0]
            fix = _suggest(key, ["backends", "aliases", "include_defaults", *OTHER_SECTIONS])
            raise ConfigError(f"{path}: {key}: unknown top-level key; fix: {fix}")
        for section in ("backends", "aliases"):
            value = user.get(section) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {section}: expected a mapping of names to settings")
            merged.setdefault(section, {}).update(value)
    return merged


def validate_models(raw: dict[str, Any], source: str) -> ModelsConfig:
    """A catalogue from plain data; a ConfigError names `source`, the key path and the fix."""
    try:
        return ModelsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_error(exc)}") from None


def describe_error(exc: ValidationError) -> str:
    """pydantic's first error as "key.path: what is wrong; fix: what to write"."""
    # A misspelt key shows up twice, as an unknown key and as a missing one: name the typo first.
    errors = sorted(exc.errors(), key=lambda e: e.get("type") == "missing")
    error = errors[0]
    loc = [str(p) for p in error.get("loc", ())]
    # A tagged error from a model validator reports the model's path; drop pydantic's internal labels.
    path = ".".join(p for p in loc if not p.startswith("function-")) or "(top level)"
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        fix = _suggest(loc[-1], sorted(model.model_fields) if model else [])
        return f"{path}: unknown key; fix: {fix}"
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        return f"{path}: {error.get('input')!r} is not allowed; fix: use one of {expected}"
    if kind == "missing":
        return f"{path}: missing; fix: add {loc[-1]}: <value>"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{path}: {message} (got {error.get('input')!r}); fix: write a value of that type"
    if not loc:  # a check across the catalogue: its message names the key path itself
        return message
    return f"{path}: {message}"


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    """The settings model at a key path such as ["aliases", "chat", "deployments", "0"]."""
    if not loc:
        return ModelsConfig
    section = {"backends": BackendConfig, "aliases": AliasConfig}.get(loc[0])
    if section is None or len(loc) < 2:
        return None
    if len(loc) == 2:
        return section
    if loc[0] == "aliases" and loc[2] == "deployments" and len(loc) == 4:
        return DeploymentConfig
    return None


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid keys: {', '.join(valid)}" if valid else "remove it"


def load_models_config(path: Path | None) -> ModelsConfig:
    """The catalogue from the package defaults and the user's YAML (see load_models_raw)."""
    return validate_models(load_models_raw(path), str(path) if path is not None else str(DEFAULTS_FILE))


class Settings(BaseSettings):
    """Process settings from `HEARTH_*` variables (and `<home>/.env` if present)."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_", extra="ignore", populate_by_name=True)

    def __init__(self, **values: Any) -> None:
        # The .env file lives in the home (hearth.home), never in whatever folder the command runs from.
        values.setdefault("_env_file", Path(values.get("data_dir") or hearth_home()) / ".env")
        super().__init__(**values)

    # The home: HEARTH_HOME (or HEARTH_DATA_DIR, its older name), else the per-user data dir; see hearth.home.
    data_dir: Path = Field(
        default_factory=hearth_home, validation_alias=AliasChoices("HEARTH_HOME", "HEARTH_DATA_DIR")
    )
    config_file: Path | None = None  # default: <home>/hearth.yaml when it exists
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
    # Also publish InferenceCompleted/InferenceFailed for every gateway request (a per-request trail). Off by
    # default: two outbox writes per request cost ~10% of gateway throughput. The usage ledger does not need
    # them: the gateway always publishes one InferenceUsage per key and alias every few seconds.
    gateway_events: bool = False
    # How often a server looks for model changes that another worker or replica stored (/api/admin/models);
    # 0: only at start-up.
    models_sync_seconds: float = 5.0
    # Retention sweeper period; 0 disables the background loop (tests call run_once with their own clock).
    retention_sweep_seconds: float = 60.0
    # Delivered events (the outbox's dispatched rows) older than this are deleted by the sweeper; consumers'
    # idempotency entries are kept at least 8 days (JetStream replays 7). 0 keeps them forever.
    events_retention_days: float = Field(7.0, ge=0)
    # --- scale-out (issue 19; docs/scale-out.md) ---
    # Work a replica claims (ingestion jobs, outbox rows, the retention sweep) is leased for this long and
    # renewed while the replica lives; a replica killed without warning hands it to the others after it.
    lease_seconds: float = Field(30.0, gt=0)
    # SIGTERM: /readyz answers 503 at once, and the server keeps serving for `shutdown_drain_seconds` so a
    # load balancer stops sending it requests; then it stops accepting and lets requests and streams in
    # flight finish for up to `shutdown_grace_seconds` before cancelling them.
    shutdown_drain_seconds: float = Field(2.0, ge=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)

    # --- rag (issue 3): add RAG settings below this line ---
    # Vector store: LanceDB in data_dir unless a Qdrant server (qdrant_url) or local-mode path is given.
    qdrant_url: str | None = None
    qdrant_path: Path | None = None
    qdrant_api_key: str | None = None
    # Chunk size and overlap in the embedder's word pieces: 180 + a title of <= 40 fits MiniLM's 256.
    rag_chunk_tokens: int = Field(180, ge=16, le=8192)
    rag_chunk_overlap: int = Field(30, ge=0)
    rag_title_tokens: int = Field(40, ge=0)
    rag_default_mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    # max: convex over max-normalised scores; convex: min-max; rrf. Chosen on Cranfield: see docs/rag.md
    rag_fusion: Literal["max", "convex", "rrf"] = "max"
    rag_sparse_weight: float = Field(0.3, ge=0, le=1)
    rag_candidates: int = Field(100, ge=1)  # per retriever, before fusion
    rag_feedback: int = Field(3, ge=0, le=50)  # hybrid: chunks for pseudo-relevance feedback (0: off)
    rag_feedback_terms: int = Field(10, ge=0, le=100)  # BM25 expansion terms from them
    rag_embed_batch: int = Field(128, ge=1)
    rag_worker_batch: int = Field(256, ge=1)  # documents per ingestion batch (docs/rag.md: why 256)
    rag_ann_threshold: int = Field(20_000, ge=1)  # rows before LanceDB builds an ANN index
    rag_worker: bool = True  # run the ingestion worker in this process

    # --- chat (issue 4): add chat/session/retention settings below this line ---
    chat_default_model: str = "chat"  # the alias used when neither the request nor the user's preferences say
    chat_title_model: str = "chat"  # the alias that writes conversation titles
    chat_title_timeout: float = 30.0  # seconds; past it the deterministic fallback title stays
    chat_max_tokens: int = 512  # reply length when a request does not say
    chat_max_content_chars: int = 32_000  # longest user message accepted
    chat_history_messages: int = 20  # earlier messages sent to the model with each turn…
    chat_history_chars: int = 12_000  # …as long as they fit this many characters (the model's context)
    chat_system_prompt: str | None = None  # prepended when no RAG system prompt is in use
    chat_retention_days: float = 30.0  # chat messages older than this are deleted
    session_max_age_days: float = 7.0  # sessions idle for longer than this expire
    redis_url: str | None = None  # sessions live in Redis/Valkey when set, else in the SQL database
    redis_prefix: str = "hearth"  # key prefix in Redis

    # --- voice (issue 4): add speech/voice settings below this line ---
    transcription_max_seconds: float = 1800.0  # longest upload /v1/audio/transcriptions accepts
    voice_max_seconds: float = 120.0  # longest spoken turn /api/voice accepts
    voice_stt_model: str = "stt"  # aliases the voice pipeline uses
    voice_tts_model: str = "tts"
    voice_chat_model: str = "chat"  # when neither the request nor the user's preferences name one
    voice_max_reply_tokens: int = 160
    voice_temperature: float = 0.3
    voice_system_prompt: str = (
        "You are Hearth, a friendly voice assistant. Answer in one to three short spoken sentences."
    )
    voice_audio_retention_hours: float = 1.0
    voice_text_retention_days: float = 30.0
    # Load Whisper and start piper when the server starts (seconds of CPU), so the first voice turn is fast.
    # Off: they load on first use (test servers that never touch audio set this).
    voice_warmup: bool = True

    # --- planner and bench (issue 5): add settings below this line ---
    # Planner deploys: kubeconfig (default ~/.kube/config, or the in-cluster service account), its context,
    # or an API server URL used as is; how often to poll an InferenceService's status.
    planner_kubeconfig: str | None = None
    planner_kube_context: str | None = None
    planner_kube_api_url: str | None = None
    planner_poll_seconds: float = 5.0
    # Folder of KServe CRDs the manifests are validated against (default: the copy shipped in the package).
    planner_kserve_crds: Path | None = None

    # --- tips (issue 15): add tips settings below this line ---
    # The token vault's key (Fernet key or passphrase); unset: a key file generated in the home (mode 0600).
    secret_key: str | None = Field(None, repr=False)
    tips_agent_dirs: tuple[
        Path, ...
    ] = ()  # extra folders of agent manifests (YAML + .py), beside the built-ins
    tips_model: str = "tip-generator"  # the alias that writes tips
    tips_judge_model: str = "judge"  # the alias that grades candidates when more than one is asked for
    tips_tip_ttl_minutes: float = Field(240, gt=0)  # a tip takes feedback until then
    tips_tick_seconds: float = 60.0  # scheduler period (connector syncs, agent pre-compute); 0: off
    tips_sync_minutes: float = Field(15, gt=0)  # a connector's sync period
    tips_runs_retention_days: float = Field(30, ge=0)  # the scheduler's run log is pruned after; 0: kept
    tips_retry_seconds: float = Field(60, ge=0)  # first wait after a failed sync (doubles per failure)
    tips_http_backoff_seconds: float = Field(1.0, ge=0)  # first wait after a 429/5xx inside one fetch
    tips_todoist_url: str = "https://api.todoist.com"
    tips_files_dir: Path | None = None  # local Markdown/.ics sources live here (default <home>/tips)

    # --- notify (issue 15): email over SMTP, web push, the in-app inbox ---
    smtp_host: str | None = None  # the email channel is offered only when set
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "hearth@localhost"
    smtp_starttls: bool = False  # STARTTLS after connecting (port 587 servers)
    smtp_timeout: float = 10.0
    notify_vapid_subject: str = (
        "mailto:admin@localhost"  # the VAPID JWT's `sub`: who push services may contact
    )
    notify_dedupe_seconds: float = 3600.0  # the same dedupe_key for a user within this window is sent once
    notify_retry_seconds: float = 30.0  # a failed delivery waits this, doubling per attempt
    notify_max_attempts: int = Field(5, ge=1)  # then it is failed for good
    notify_poll_seconds: float = 5.0  # how often due deliveries (deferred, retrying) are looked for
    notify_retention_days: float = 90.0  # notifications (deliveries, log, inbox items) older than this go

    # --- agents (issue 17): router graph, crew, tools, MCP ---
    agents_chat_model: str = "chat"  # the alias that answers (router) and researches and writes (crew)
    agents_classifier_model: str = "chat"  # the alias that classifies queries (rules are the floor)
    agents_judge_model: str = "judge"  # the alias that scores answers 0-100 and reviews crew drafts
    agents_threshold: int = Field(60, ge=0, le=100)  # judge score below which the router retries once
    agents_max_tokens: int = Field(256, ge=1)  # answer length when a request does not say
    agents_classify_timeout: float = 30.0  # seconds; past it the deterministic classifier decides
    agents_judge_timeout: float = 60.0  # seconds; past it the deterministic signals score the answer
    agents_model_timeout: float = 300.0  # seconds for an answer (router) or a crew step
    agents_tool_timeout: float = 10.0  # default per tool call
    agents_max_revisions: int = Field(2, ge=0, le=5)  # times a crew's reviewer may send a draft back
    # Runs that ended longer ago than this are deleted with their checkpoints; 0 keeps them forever.
    agents_retention_days: float = Field(30.0, ge=0)
    agents_mcp_http: bool = True  # serve Hearth's tools over MCP at /mcp (streamable HTTP, Bearer auth)
    # A process marks its running runs alive this often; a run not marked for 3 beats was cut short (its
    # process died) and becomes `interrupted`, resumable.
    agents_heartbeat_seconds: float = Field(10.0, gt=0)
    # When a step's checkpoint is written: "async" while the next step runs (the model call it starts hides
    # the write; a process killed in that window runs the last step again on resume), "sync" before the next
    # step starts (each step waits for its write). docs/agents.md has the trade.
    agents_checkpoint_durability: Literal["sync", "async"] = "async"

    # --- workflows (issue 16): add settings below this line ---
    workflows_executor: bool = True  # run the local executor (a worker pool) in this process
    workflows_concurrency: int = Field(4, ge=1, le=256)  # steps run at once by this process
    workflows_poll_seconds: float = Field(
        0.5, gt=0
    )  # how often idle workers look for work another server made
    workflows_heartbeat_seconds: float = Field(5.0, gt=0)  # running steps say they are alive this often
    # A running step whose heartbeat is older than this lost its worker (a crash): resumed or failed.
    workflows_stale_seconds: float = Field(30.0, gt=0)
    # PostgreSQL: step transitions wait for the WAL flush (false: they don't, cheaper on a busy disk; a
    # PostgreSQL crash may then lose the last ones, whose steps resume as after a server crash and may run
    # twice; docs/workflows.md "Scheduling cost").
    workflows_synchronous_commit: bool = True
    workflows_modules: str = ""  # comma-separated Python modules whose pipelines this server registers
    # Folders whose files non-admins may pass as file:// artifact parameters (besides the artifacts folder);
    # comma-separated. Admins may pass any file the server can read.
    workflows_file_roots: str = ""
    # Artifacts go to S3 (or MinIO, any S3-compatible server) when a bucket is set; else under data_dir.
    s3_bucket: str | None = None
    s3_prefix: str = "hearth"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Argo Workflows: where runs are submitted (kubeconfig, its context, or an API server URL used as is),
    # the image whose `hearth run step` the containers call, and the Secret holding HEARTH_DATABASE_URL.
    argo_namespace: str = "default"
    argo_image: str = "ghcr.io/hearth/hearth:latest"
    argo_kubeconfig: str | None = None
    argo_kube_context: str | None = None
    argo_kube_api_url: str | None = None
    argo_secret: str = "hearth-workflows"
    argo_service_account: str | None = None

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
    def models_file(self) -> Path | None:
        """The YAML file the model catalogue is read from (None: the built-in defaults only)."""
        path = self.config_file
        if path is None:
            path = default_config_file(self.data_dir)
        if path is not None and not path.exists():
            raise ConfigError(
                f"{path}: no such file (HEARTH_CONFIG_FILE); fix: point HEARTH_CONFIG_FILE at your "
                "hearth.yaml or unset it to use the built-in models"
            )
        return path.resolve() if path is not None else None

    @cached_property
    def models(self) -> ModelsConfig:
        return load_models_config(self.models_file)
