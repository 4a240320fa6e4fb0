"""FastAPI dependencies on the platform: a context's routes reach its service through its port.

Rag = Annotated[RagService, Depends(port(SERVICE))]

async def route(rag: Rag, principal: CurrentUser) -> ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import HTTPConnection

from hearth.platform.ports import Port

T = TypeVar("T")


def port(key: Port[T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A dependency returning what the running platform provides for `key` (HTTP and WebSocket routes).
    Async, so FastAPI calls it on the loop instead of hopping to its thread pool on every request."""

    async def dependency(connection: HTTPConnection) -> T:
        return connection.app.state.platform.ports.require(key)

    dependency.__name__ = f"port_{key.name.replace('.', '_')}"
    return dependency
