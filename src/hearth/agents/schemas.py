"""Request and response bodies of the agents API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp

CATEGORIES = ("factual", "analytical", "creative", "chit-chat")
Category = Literal["factual", "analytical", "creative", "chit-chat"]
RunKind = Literal["router", "crew"]
RunStatus = Literal["running", "completed", "failed", "interrupted"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"


class RouterRequest(BaseModel):
    """One question for the query router."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8000, pattern=r"\S")
    # The collection to answer from; with several, the router picks the one whose best passage scores
    # highest (a collection router). None: the question is answered directly.
    collection: str | None = Field(None, min_length=1, max_length=128, pattern=_NAME)
    collections: list[str] = Field([], max_length=20)
    route: Literal["auto", "rag", "direct"] = "auto"  # auto: the classification decides
    mode: Literal["dense", "sparse", "hybrid"] | None = None  # retrieval mode (None: the server's)
    top_k: int = Field(10, ge=1, le=100)
    top_n: int = Field(3, ge=1, le=10)
    threshold: int | None = Field(None, ge=0, le=100)  # judge score below which the router retries once
    max_tokens: int | None = Field(None, ge=1, le=4096)
    stream: bool = False


class CrewRequest(BaseModel):
    """One research task for the researcher → writer → reviewer crew."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8000, pattern=r"\S")
    collection: str | None = Field(None, min_length=1, max_length=128, pattern=_NAME)
    tools: list[str] | None = Field(None, max_length=50)  # which tools the researcher may use (None: all)
    max_revisions: int | None = Field(None, ge=0, le=5)  # times the reviewer may send the draft back
    max_tokens: int | None = Field(None, ge=1, le=4096)
    stream: bool = False


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream: bool = False


class RunOut(ORMModel):
    id: str
    kind: RunKind
    status: RunStatus
    query: str
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    finished_at: UtcTimestamp | None


class RunDetail(RunOut):
    # The steps taken so far (from the checkpoint while running, from the result once finished) and the
    # node(s) the graph would run next (empty once finished).
    steps: list[dict[str, Any]] = []
    next: list[str] = []


class Checkpoint(BaseModel):
    """One checkpoint of a run's graph, oldest first: the state after `step`, and what runs next."""

    checkpoint_id: str
    step: int
    source: str  # input | loop | update
    wrote: list[str]  # the node(s) whose output this checkpoint records
    next: list[str]
    created_at: str
    values: dict[str, Any]


class ToolOut(BaseModel):
    name: str
    description: str
    source: str  # hearth | mcp:<server>
    input_schema: dict[str, Any]
    timeout_s: float


class ToolCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = {}


class ToolCallOut(BaseModel):
    tool: str
    arguments: dict[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    latency_ms: float
