"""Wire format: JSON for small, readable payloads; MessagePack for big or binary ones.

JSON stays the default because it is greppable in the outbox and in `nats stream view`. MessagePack wins
for bytes (JSON would need base64) and for embedding vectors (float64 is 9 bytes instead of ~20 chars,
and round-trips exactly).
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
from pydantic_core import to_jsonable_python

from hearth.events.schemas import Event, event_class

JSON = "application/json"
MSGPACK = "application/msgpack"

JSON_LIMIT = 8 * 1024  # above this, msgpack is smaller and faster to parse
VECTOR_MIN_LEN = 64  # a float list this long is treated as an embedding vector


def encode(event: Event, *, json_limit: int = JSON_LIMIT) -> tuple[str, bytes]:
    """Return (content_type, payload) for an event."""
    data = event.model_dump(mode="python")
    if not _prefers_msgpack(data):
        body = orjson.dumps(data, default=to_jsonable_python)
        if len(body) <= json_limit:
            return JSON, body
    return MSGPACK, msgpack.packb(data, default=to_jsonable_python, use_bin_type=True)


def decode(type_name: str, content_type: str, payload: bytes) -> Event:
    """Rebuild a typed event; raises UnknownEventType when the type is not registered here."""
    cls = event_class(type_name)
    return cls.model_validate(loads(content_type, payload))


def loads(content_type: str, payload: bytes) -> Any:
    if content_type == MSGPACK:
        return msgpack.unpackb(payload, raw=False)
    if content_type == JSON:
        return orjson.loads(payload)
    raise ValueError(f"unsupported content type {content_type!r}")


def _prefers_msgpack(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, dict):
        return any(_prefers_msgpack(v) for v in value.values())
    if isinstance(value, list | tuple):
        if len(value) >= VECTOR_MIN_LEN and all(isinstance(v, float) for v in value):
            return True
        return any(_prefers_msgpack(v) for v in value)
    return False
