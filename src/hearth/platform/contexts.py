"""How an application context (RAG, chat, voice, planner…) plugs into the platform.

Each context package has a `wiring.py` exposing `CONTEXT`: its routes and how to start and stop its service.
The app starts contexts in the order of `CONTEXT_MODULES` (later ones may use earlier ones' services through
`platform.services`) and stops them in reverse. Contexts meet through services or events, never each other's
tables.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

if TYPE_CHECKING:
    from hearth.app import Platform

CONTEXT_MODULES = (
    "hearth.rag.wiring",
    "hearth.chat.wiring",
    "hearth.voice.wiring",
    "hearth.planner.wiring",
    "hearth.bench.wiring",
)


async def _no_stop(service: Any) -> None:
    return None


@dataclass(frozen=True)
class Context:
    name: str
    start: Callable[[Platform], Awaitable[Any]]  # returns the service, kept in platform.services[name]
    stop: Callable[[Any], Awaitable[None]] = _no_stop
    routers: tuple[APIRouter, ...] = field(default_factory=tuple)


def load_contexts() -> list[Context]:
    return [importlib.import_module(name).CONTEXT for name in CONTEXT_MODULES]


def service(request: Request, name: str) -> Any:
    """The running service of context `name`, for a route's dependency function."""
    return request.app.state.platform.services[name]
