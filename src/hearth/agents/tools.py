"""The typed tool registry agents call: every tool has a name, a description, a JSON schema for its
arguments (from a pydantic model for Hearth's own tools, from the server for MCP tools), and a timeout.
Arguments are validated before the tool runs; a call that outlives its timeout is cancelled and recorded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from hearth.gateway.service import Caller
from hearth.platform.errors import HearthError, not_found

log = logging.getLogger("hearth.agents")


@dataclass(frozen=True)
class ToolContext:
    """Who the tool runs for: tools act with the caller's permissions (their collections, their key)."""

    user_id: str
    caller: Caller
    is_admin: bool = False


class ToolArgumentsInvalid(Exception):
    def __init__(self, tool: str, errors: list[str]) -> None:
        super().__init__(f"{tool}: invalid arguments: " + "; ".join(errors))
        self.errors = errors


@dataclass
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[Any, ToolContext], Awaitable[Any]]  # receives the validated arguments
    timeout: float = 10.0
    source: str = "hearth"  # hearth | mcp:<server>
    args_model: type[BaseModel] | None = None  # Hearth's own tools: arguments parse into this model

    def validate(self, arguments: dict[str, Any]) -> Any:
        """The arguments as the tool takes them; ToolArgumentsInvalid naming each problem."""
        if self.args_model is not None:
            try:
                return self.args_model.model_validate(arguments)
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors()
                ]
                raise ToolArgumentsInvalid(self.name, problems) from None
        validator = jsonschema.Draft202012Validator(self.input_schema)
        problems = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}"
            for e in validator.iter_errors(arguments)
        ]
        if problems:
            raise ToolArgumentsInvalid(self.name, problems)
        return arguments


def typed_tool(
    name: str,
    description: str,
    args: type[BaseModel],
    run: Callable[[Any, ToolContext], Awaitable[Any]],
    *,
    timeout: float = 10.0,
) -> Tool:
    """A Hearth tool whose arguments are the pydantic model `args`."""
    schema = args.model_json_schema()
    schema.pop("title", None)
    return Tool(name, description, schema, run, timeout=timeout, args_model=args)


@dataclass
class ToolCall:
    """What an agent's step records about one tool call."""

    tool: str
    arguments: dict[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    latency_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "ok": self.ok,
            "result": self.result,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


@dataclass
class ToolRegistry:
    """The tools agents may call. Contexts loaded later add theirs with `register` (the tips context's
    `tips_next` is meant to arrive this way: see docs/agents.md, "Adding a tool")."""

    default_timeout: float = 10.0
    tools: dict[str, Tool] = field(default_factory=dict)
    # Sources of tools found lazily (external MCP servers): each returns its tools when first needed.
    loaders: list[Callable[[], Awaitable[list[Tool]]]] = field(default_factory=list)
    _loaded: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def register(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self.tools[tool.name] = tool

    async def all(self) -> list[Tool]:
        await self._load()
        return sorted(self.tools.values(), key=lambda t: t.name)

    async def get(self, name: str) -> Tool:
        await self._load()
        tool = self.tools.get(name)
        if tool is None:
            raise not_found(f"no tool {name!r}", param="name", code="unknown_tool")
        return tool

    async def _load(self) -> None:
        if self._loaded or not self.loaders:
            return
        async with self._lock:
            if self._loaded:
                return
            pending = []
            for loader in self.loaders:
                try:
                    found = await loader()
                except Exception as exc:  # a server that is down now is asked again next time
                    log.warning("agent tools: a tool source failed to list its tools: %s", exc)
                    pending.append(loader)
                    continue
                for tool in found:
                    if tool.name not in self.tools:
                        self.tools[tool.name] = tool
            self.loaders = pending
            self._loaded = not pending

    async def call(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolCall:
        """Run one tool: validated arguments, its timeout. Failures are recorded in the ToolCall, never
        raised (an agent carries on without the result); an unknown tool is a failed call too."""
        started = time.perf_counter()

        def done(ok: bool, result: Any = None, error: str | None = None) -> ToolCall:
            latency = round((time.perf_counter() - started) * 1000, 2)
            return ToolCall(name, arguments, ok, result, error, latency)

        try:
            tool = await self.get(name)
            parsed = tool.validate(arguments)
        except HearthError as exc:
            return done(False, error=exc.message)
        except ToolArgumentsInvalid as exc:
            return done(False, error=str(exc))
        try:
            async with asyncio.timeout(tool.timeout):
                result = await tool.run(parsed, ctx)
        except TimeoutError:
            return done(False, error=f"timed out after {tool.timeout:g} s")
        except HearthError as exc:
            return done(False, error=exc.message)
        except Exception as exc:
            return done(False, error=f"{type(exc).__name__}: {exc}")
        return done(True, result=_jsonable(result))


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
