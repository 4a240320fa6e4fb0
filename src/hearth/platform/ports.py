"""Typed ports: how one context offers a capability to others without exposing its service.

A context declares a `Port[T]` in its `ports.py` (T a small Protocol) and its wiring `provide`s an object that
implements it; another context's wiring asks for the port by that key and gets a `T`, checked by the type
checker at both ends. A missing port is an error at start-up (`require`) or an explicit `None` (`find`),
never a `hasattr` probe at call time.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class Port(Generic[T]):
    """The typed name under which a context offers one capability."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Port({self.name!r})"


class PortMissing(LookupError):
    def __init__(self, port: Port[Any]) -> None:
        super().__init__(f"no context provides the port {port.name!r} (is its context loaded?)")
        self.port = port


class Ports:
    """The platform's ports, filled by each context's wiring as it starts."""

    def __init__(self) -> None:
        self._provided: dict[str, object] = {}

    def provide(self, port: Port[T], implementation: T) -> None:
        if port.name in self._provided:
            raise ValueError(f"port {port.name!r} is provided twice")
        self._provided[port.name] = implementation

    def require(self, port: Port[T]) -> T:
        """The port's implementation; `PortMissing` when no loaded context provides it."""
        try:
            return cast(T, self._provided[port.name])
        except KeyError:
            raise PortMissing(port) from None

    def find(self, port: Port[T]) -> T | None:
        """The port's implementation, or None when no loaded context provides it (an optional dependency)."""
        return cast("T | None", self._provided.get(port.name))
