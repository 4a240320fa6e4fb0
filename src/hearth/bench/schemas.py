"""Bench schemas: what a run is asked to do (`BenchConfig`), what it measured (`BenchReport`).

Metric names and definitions follow GuideLLM's (`guidellm.schemas.base.request_stats`), so a Hearth report and
a GuideLLM report of the same endpoint can be read side by side:
TTFT = first token − request start; ITL = (last token − first token) / (output tokens − 1);
TPOT = (last token − request start) / output tokens; E2E (request latency) = request end − request start.
ITL and TPOT distributions are weighted by the tokens they cover, as GuideLLM weights them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hearth.platform.kit.time import UtcTimestamp

Mode = Literal["synchronous", "concurrent", "throughput", "constant", "poisson", "sweep"]
StrategyType = Literal["synchronous", "concurrent", "throughput", "constant", "poisson"]


class BenchConfig(BaseModel):
    """One `hearth bench run`: the endpoint, the load, the data and when to stop."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1)  # base URL of an OpenAI-compatible API, e.g. http://host:8000/v1
    model: str = Field(min_length=1)  # the model name sent in each request (a Hearth alias, a vLLM model id)
    api_key: str | None = None
    endpoint_kind: Literal["chat", "completions"] = "chat"
    mode: Mode = "synchronous"
    # concurrent: streams; throughput/sweep: the cap on requests in flight
    concurrency: int | None = Field(None, ge=1, le=100_000)
    rate: float | None = Field(None, gt=0, le=1_000_000)  # constant/poisson: requests per second
    sweep_size: int = Field(10, ge=3, le=100)  # sweep: synchronous + throughput + (n − 2) rates between
    max_concurrency: int = Field(256, ge=1, le=100_000)  # throughput: requests in flight at once
    prompt_tokens: int = Field(256, ge=1, le=1_000_000)
    output_tokens: int = Field(128, ge=1, le=1_000_000)
    dataset: Path | None = None  # jsonl or csv of prompts (column/field "prompt" or "text")
    tokenizer: str | None = None  # tokenizer.json or .gguf; default: SmolLM2's (Hearth's embedded chat model)
    ignore_eos: bool = True  # ask servers that support it (vLLM) to produce exactly output_tokens
    max_seconds: float | None = Field(None, gt=0, le=7 * 24 * 3600)  # per benchmark, warm-up excluded
    max_requests: int | None = Field(None, ge=1, le=100_000_000)  # per benchmark, warm-up excluded
    max_error_rate: float | None = Field(None, gt=0, le=1)  # stop once errors / finished exceeds this
    warmup_requests: int = Field(0, ge=0, le=1_000_000)  # first requests of each benchmark, not measured
    request_timeout: float = Field(600.0, gt=0)
    seed: int = 42

    @model_validator(mode="after")
    def _check(self) -> BenchConfig:
        if not self.target.startswith(("http://", "https://")):
            raise ValueError(f"target must be an http(s) URL, got {self.target!r}")
        if self.max_seconds is None and self.max_requests is None:
            raise ValueError(
                "give a stop condition: max_seconds (--duration) and/or max_requests (--requests)"
            )
        if self.mode == "concurrent" and self.concurrency is None:
            raise ValueError("concurrent mode needs concurrency (--concurrency N)")
        if self.mode in ("constant", "poisson") and self.rate is None:
            raise ValueError(f"{self.mode} mode needs a request rate (--rate R, requests per second)")
        return self

    @property
    def base_url(self) -> str:
        return self.target.rstrip("/")


class Strategy(BaseModel):
    """One load point of a run: how requests are scheduled."""

    type: StrategyType
    streams: int | None = None  # concurrent: streams; throughput: cap on requests in flight
    rate: float | None = None  # constant/poisson: requests per second

    @property
    def label(self) -> str:
        if self.type == "concurrent":
            return f"concurrent@{self.streams}"
        if self.type in ("constant", "poisson"):
            return f"{self.type}@{self.rate:.3g}/s"
        return self.type


class RequestRecord(BaseModel):
    """One request's timings (perf_counter seconds) and token counts."""

    index: int
    start: float
    end: float
    first_token: float | None = None
    last_token: float | None = None
    iterations: int = 0  # streamed chunks that carried text
    prompt_tokens: int = 0
    output_tokens: int = 0
    status: Literal["successful", "errored", "incomplete"] = "successful"
    error: str | None = None
    warmup: bool = False

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else 1000 * (self.first_token - self.start)

    @property
    def itl_ms(self) -> float | None:
        if self.first_token is None or self.last_token is None or self.output_tokens <= 1:
            return None
        return 1000 * (self.last_token - self.first_token) / (self.output_tokens - 1)

    @property
    def tpot_ms(self) -> float | None:
        if self.output_tokens <= 0:
            return None
        return 1000 * ((self.last_token or self.end) - self.start) / self.output_tokens


class Distribution(BaseModel):
    """A metric's summary over the successful requests of one benchmark."""

    count: int = 0
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None


class Samples(BaseModel):
    """Per-request values of one benchmark (successful requests; evenly thinned on long runs), so a single
    run can be plotted as distributions and re-summarised later."""

    ttft_ms: list[float] = Field(default_factory=list)
    itl_ms: list[float] = Field(default_factory=list)
    e2e_ms: list[float] = Field(default_factory=list)


class BenchmarkResult(BaseModel):
    """The measured figures of one load point."""

    strategy: Strategy
    duration_s: float
    successful: int
    errored: int
    incomplete: int
    warmup: int
    stopped_by: str  # max_seconds | max_requests | max_error_rate | done
    ttft_ms: Distribution
    itl_ms: Distribution
    tpot_ms: Distribution
    e2e_ms: Distribution
    prompt_tokens: Distribution
    output_tokens: Distribution
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    concurrency: float  # mean requests in flight (Little's law over the measured window)
    error_rate: float
    errors: dict[str, int] = Field(default_factory=dict)  # message → count, a few kinds at most
    samples: Samples = Field(default_factory=Samples)  # absent in reports written before it existed


class BenchReport(BaseModel):
    """A whole run: its config (without the API key), the tokenizer it counted with, and each load point."""

    run_id: str
    started_at: str
    config: dict
    tokenizer: str
    benchmarks: list[BenchmarkResult]


class ImportRequest(BaseModel):
    """`POST /api/bench/import`: a GuideLLM report (or a Hearth bench report) and the row labels it lacks."""

    model_config = ConfigDict(extra="forbid")

    report: dict
    model_id: str | None = Field(None, min_length=1)
    quantization: str = Field("fp16", min_length=1)
    gpu: str = Field("cpu", min_length=1)
    gpu_count: int = Field(1, ge=0, le=1024)
    hardware_label: str | None = None
    source: str | None = Field(None, min_length=1)


class ImportResult(BaseModel):
    saved: int
    format: Literal["guidellm", "hearth"]
    rows: list[dict]


# -- short runs from the web UI's Bench screen (bench/live.py) ------------------------------------------

Level = Annotated[int, Field(ge=1, le=64)]


class LiveRunRequest(BaseModel):
    """`POST /api/bench/runs`: a short bench of one Hearth alias (through the gateway, in process) or of an
    OpenAI-compatible URL, at one or more concurrency levels. Bounded, so a click cannot start an hour of
    load: at most 6 levels of at most 64 streams, 200 requests each, 4,096 prompt and 1,024 output tokens."""

    model_config = ConfigDict(extra="forbid")

    alias: str | None = Field(None, min_length=1, max_length=128, description="a Hearth chat alias")
    url: str | None = Field(None, min_length=1, max_length=512, description="an OpenAI-compatible …/v1 URL")
    model: str | None = Field(None, min_length=1, max_length=256, description="the model to ask `url` for")
    api_key: str | None = Field(None, max_length=512, description="a Bearer key for `url`; never stored")
    concurrency: list[Level] = Field(default_factory=lambda: [1], min_length=1, max_length=6)
    requests: int = Field(8, ge=1, le=200, description="measured requests per level")
    prompt_tokens: int = Field(64, ge=1, le=4096)
    output_tokens: int = Field(32, ge=1, le=1024)

    @model_validator(mode="after")
    def _check(self) -> LiveRunRequest:
        if (self.alias is None) == (self.url is None):
            raise ValueError("give either alias (a Hearth alias) or url (an OpenAI-compatible endpoint)")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
            if self.model is None:
                raise ValueError("a url needs model: the model name to request from it")
        self.concurrency = sorted(set(self.concurrency))
        return self

    @property
    def target(self) -> str:
        return f"alias:{self.alias}" if self.alias is not None else str(self.url)


class LevelSummary(BaseModel):
    """One load point of a live run, as the Bench screen charts it."""

    concurrency: int
    strategy: str
    successful: int
    errored: int
    incomplete: int
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    ttft_ms: Distribution
    itl_ms: Distribution
    e2e_ms: Distribution
    errors: dict[str, int] = Field(default_factory=dict)


class BenchRunOut(BaseModel):
    """A stored live run."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    user_id: str
    target: str
    model: str
    status: Literal["completed", "failed"]
    error: str | None
    settings: dict
    levels: list[LevelSummary]
    created_at: UtcTimestamp
