"""Background tasks: every context that runs one stops it the same way."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has stopped; returns None, for `self._task = await …`."""
    if task is None:
        return None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
