"""What a graph's nodes need at run time but must not checkpoint: the caller (for the gateway's accounting
and rate limits), and the step recorder both graphs' nodes share: its timing, its model calls (tokens and
model time counted, whether the model answers or fails) and the record it writes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer

from hearth.agents.llm import Completion, ModelFailed, complete
from hearth.gateway.service import Caller, Gateway


@dataclass(frozen=True)
class RunDeps:
    user_id: str
    caller: Caller
    is_admin: bool = False


def deps(config: RunnableConfig) -> RunDeps:
    return config["configurable"]["hearth"]  # type: ignore[no-any-return]


def emit(event: dict[str, Any]) -> None:
    """Relay an event (a token, a tool call) to whoever streams the run; a no-op when nobody does."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not inside a graph run (unit use)
        return
    writer(event)


@dataclass
class Step:
    """One node's record: input, output, tool calls, tokens, latency (and how much of it the models took)."""

    node: str
    input: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    model_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    models: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    async def model(self, gateway: Gateway, caller: Caller, *, alias: str, **kwargs: Any) -> Completion:
        """A model call through `llm.complete` (same arguments), counted in this step: its tokens and time
        when it answers, its time when it fails (ModelFailed is raised on: the node decides the fallback)."""
        try:
            completion = await complete(gateway, caller, alias=alias, **kwargs)
        except ModelFailed as exc:
            self.add_model_time(exc.elapsed_ms, alias)
            raise
        self.add_model(completion)
        return completion

    def add_model(self, completion: Completion) -> None:
        self.model_ms += completion.latency_ms
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.models.append(completion.alias)

    def add_model_time(self, ms: float, alias: str) -> None:
        """A model call that failed still took time (it is not Hearth's overhead)."""
        self.model_ms += ms
        self.models.append(alias)

    def record(self, output: dict[str, Any], **extra: Any) -> dict[str, Any]:
        latency = (time.perf_counter() - self.started) * 1000
        return {
            "node": self.node,
            "started_at": self.started_at,
            "input": self.input,
            "output": output,
            "tool_calls": self.tool_calls,
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "models": self.models,
            "latency_ms": round(latency, 3),
            "model_ms": round(self.model_ms, 3),
            **extra,
        }
