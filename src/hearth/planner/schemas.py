"""Planner schemas. `BenchmarkRowIn` is the contract between the bench (which measures) and the planner's
knowledge base (which stores and learns from the rows): both sides use it as is."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from hearth.platform.kit.repository import MAX_SQL_INT
from hearth.platform.kit.schemas import ORMModel

RowKind = Literal["measured", "estimated", "synthetic"]
# online: streaming clients at a concurrency or rate (a deployed service); offline: every request queued at
# once (maximum throughput).
RowMode = Literal["online", "offline"]


class BenchmarkRowIn(BaseModel):
    """One benchmark result: a model on some GPUs at one traffic point, with where the figures come from."""

    model_id: str  # Hugging Face id, e.g. "meta-llama/Llama-3.1-8B-Instruct"
    quantization: str = "fp16"  # fp16, bf16, fp8, int8, int4-awq, gguf-q4_1 …
    gpu: str  # GPU profile name, e.g. "H100-80GB"; "cpu" for CPU runs
    gpu_count: int = Field(1, ge=0, le=MAX_SQL_INT)
    prompt_tokens: int = Field(ge=0, le=MAX_SQL_INT)
    output_tokens: int = Field(ge=0, le=MAX_SQL_INT)
    concurrency: float | None = Field(None, gt=0)  # closed-loop load …
    request_rate: float | None = Field(None, gt=0)  # … or open-loop requests/s
    ttft_ms_p50: float | None = None
    ttft_ms_p95: float | None = None
    ttft_ms_p99: float | None = None
    itl_ms_p50: float | None = None
    itl_ms_p95: float | None = None
    itl_ms_p99: float | None = None
    e2e_ms_p50: float | None = None
    e2e_ms_p95: float | None = None
    e2e_ms_p99: float | None = None
    requests_per_s: float | None = None
    output_tokens_per_s: float | None = None
    source: str  # publication title or "hearth bench run <id>"
    source_url: str | None = None
    measured_on: date
    kind: RowKind
    hardware_label: str | None = None  # free text for own runs, e.g. "2-core CPU, SmolLM2 Q4_1"
    endpoint: str | None = None  # the URL an own run measured
    mode: RowMode = "online"
    engine: str | None = None  # serving engine and version, e.g. "vLLM v0.23.0"
    method: str | None = None  # how the load was generated, e.g. "closed-loop sweep, vllm bench serve"


# -- knowledge base -----------------------------------------------------------------------------------------


class BenchmarkRowOut(BenchmarkRowIn, ORMModel):
    id: str


class ModelOut(ORMModel):
    id: str
    family: str
    params_b: float
    active_params_b: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    license: str
    quantizations: list[str]
    tasks: list[str]
    quality: float
    quality_source: str
    source: str
    checkpoints: dict[str, str] | None = None


class GpuOut(ORMModel):
    name: str
    product_label: str
    memory_gb: float
    bandwidth_gbs: float
    tflops_bf16: float
    tflops_fp8: float | None
    interconnect_gbs: float
    max_per_node: int
    price_per_hour: float
    price_source: str
    price_date: date
    source: str


# -- predictions --------------------------------------------------------------------------------------------


class PredictRequest(BaseModel):
    """One configuration at one traffic point: closed loop (`concurrency`) or open loop (`request_rate`)."""

    model_id: str = Field(min_length=1)
    quantization: str = "bf16"
    gpu: str = Field(min_length=1)
    gpu_count: int = Field(1, ge=0, le=64)  # 0: a CPU run, answered from its benchmark rows only
    prompt_tokens: int = Field(ge=1, le=1_000_000)
    output_tokens: int = Field(ge=1, le=1_000_000)
    concurrency: float | None = Field(None, gt=0, le=100_000)
    request_rate: float | None = Field(None, gt=0, le=1_000_000)
    max_num_seqs: int | None = Field(None, ge=1, le=65_536)
    # The serving engine: how it sizes the KV cache (vLLM: a fraction of all GPU memory; TensorRT-LLM, as in
    # NVIDIA NIM: a fraction of what the weights leave), which sets the batch limit. The planner deploys vLLM.
    engine: Literal["vllm", "tensorrt-llm"] = "vllm"


class PredictResponse(BaseModel):
    model_id: str
    quantization: str
    gpu: str
    gpu_count: int
    prompt_tokens: int
    output_tokens: int
    concurrency: float | None
    request_rate: float | None
    engine: str = "vllm"
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    itl_ms_p50: float | None
    itl_ms_p95: float | None
    e2e_ms_p50: float | None
    e2e_ms_p95: float | None
    output_tokens_per_s: float | None
    requests_per_s: float | None
    source: str  # measured | estimated | synthetic (an exact row) | model | rows
    confidence: str  # high | medium | low
    # The largest mean absolute % error, over TTFT, ITL and output tokens/s, of this kind of prediction on
    # held-out online rows (`expected_error_by_metric` has each; `error_basis` says which hold-out: a row, a
    # whole configuration or a whole source left out). None for an exact measured row.
    expected_error_pct: float | None
    expected_error_by_metric: dict[str, float] = {}
    error_basis: str | None = None
    running_sequences: float | None
    saturated: bool
    rows_used: list[str]
    notes: list[str]


# -- intent and specification -------------------------------------------------------------------------------

UseCaseName = Literal[
    "chatbot_conversational",
    "code_completion",
    "code_generation_detailed",
    "translation",
    "content_generation",
    "summarization_short",
    "document_analysis_rag",
    "long_document_summarization",
    "research_legal_analysis",
]
ExperienceName = Literal["instant", "conversational", "interactive", "deferred", "batch"]


class Intent(BaseModel):
    """What the user wants, extracted from their words."""

    use_case: UseCaseName
    users: int = Field(gt=0, le=100_000_000)
    latency_priority: Literal["low", "medium", "high"] = "medium"
    budget_per_month: float | None = Field(None, gt=0)
    preferred_gpus: list[str] = []
    domain: str | None = None


class IntentRequest(BaseModel):
    text: str = Field(min_length=3, max_length=4000)
    use_model: bool = True  # ask the chat alias first; False: the deterministic parser only


class TrafficProfile(BaseModel):
    name: str = "custom"
    prompt_tokens: int = Field(gt=0, le=1_000_000)
    output_tokens: int = Field(gt=0, le=1_000_000)


class SloTargets(BaseModel):
    ttft_ms_p95: float = Field(gt=0)
    itl_ms_p95: float = Field(gt=0)
    e2e_ms_p95: float = Field(gt=0)


class Workload(BaseModel):
    users: int = Field(gt=0, le=100_000_000)
    active_fraction: float = Field(gt=0, le=1)  # share of users active in the peak hour
    requests_per_active_user_hour: float = Field(gt=0, le=100_000)
    peak_multiplier: float = Field(ge=1, le=100)  # peak-to-average within the hour


class Spec(BaseModel):
    """The deployment specification; every field is editable, then POST it back to re-plan (what-if)."""

    use_case: str
    description: str = ""
    experience_class: ExperienceName
    traffic: TrafficProfile
    slo: SloTargets
    workload: Workload
    qps: float | None = Field(
        None, gt=0, le=1e9
    )  # set to override the workload model (a billion req/s at most)
    budget_per_month: float | None = Field(None, gt=0)
    preferred_gpus: list[str] = []
    task: str = "chat"
    domain: str | None = None


class IntentResponse(BaseModel):
    intent: Intent
    extracted_by: Literal["model", "parser"]
    spec: Spec
    expected_qps: float


# -- plans ------------------------------------------------------------------------------------------------


class Weights(BaseModel):
    accuracy: float = Field(0.4, ge=0)
    cost: float = Field(0.3, ge=0)
    latency: float = Field(0.2, ge=0)
    complexity: float = Field(0.1, ge=0)


class PlanRequest(BaseModel):
    spec: Spec
    weights: Weights = Weights()
    models: list[str] | None = None  # restrict to these catalog ids
    gpus: list[str] | None = None  # restrict to these GPU profiles (else spec.preferred_gpus, else all)
    limit: int = Field(10, ge=1, le=200)


class PlanOption(BaseModel):
    rank: int = 0
    model_id: str
    quantization: str
    gpu: str
    gpu_product_label: str
    gpus_per_replica: int
    replicas: int
    total_gpus: int
    max_num_seqs: int  # per replica, the largest batch that meets the SLOs
    max_model_len: int
    ttft_ms_p95: float
    itl_ms_p95: float
    e2e_ms_p95: float
    requests_per_s_per_replica: float
    monthly_cost: float
    quality: float
    quality_source: str
    scores: dict[str, float]
    source: str  # model | calibrated by nearby rows | measured
    confidence: str
    pareto: bool


class PlanResponse(BaseModel):
    spec: Spec
    expected_qps: float
    candidates_evaluated: int
    candidates_meeting_slo: int
    search_ms: float
    balanced: list[PlanOption]
    best_accuracy: list[PlanOption]
    cheapest: list[PlanOption]
    fastest: list[PlanOption]
    simplest: list[PlanOption]
    pareto: list[PlanOption]
    notes: list[str]


class ManifestRequest(BaseModel):
    option: PlanOption
    name: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")
    namespace: str = Field("default", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    max_replicas: int | None = Field(None, ge=1, le=1000)


class ManifestResponse(BaseModel):
    name: str
    namespace: str
    manifests: list[dict]
    yaml: str


class DeployRequest(ManifestRequest):
    alias: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    endpoint: str | None = None  # the InferenceService URL; read from its status when absent
    timeout_s: float = Field(600, gt=0, le=7200)


class DeployResponse(BaseModel):
    name: str
    namespace: str
    applied: list[str]  # kind/name of each object applied
    ready: bool
    url: str | None
    alias: str
    registered: bool
