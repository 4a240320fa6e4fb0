"""The uvicorn server `hearth serve` runs: uvicorn's graceful shutdown, with a drain step before it."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import uvicorn


class DrainingServer(uvicorn.Server):
    """On SIGTERM the platform is marked draining (/readyz answers 503) and the server keeps serving for
    `drain_seconds`, so a load balancer or Kubernetes takes it out of rotation before it stops accepting
    connections. Then uvicorn's own shutdown: listeners closed, requests and streams in flight finish within
    `timeout_graceful_shutdown` (HEARTH_SHUTDOWN_GRACE_SECONDS), and the platform stops (the ingestion worker
    gives its claimed jobs back). SIGINT (Ctrl-C) and a second SIGTERM skip the drain."""

    def __init__(self, config: uvicorn.Config, app: Any, *, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # (A wrapped app, e.g. bench/soak.py's probe, has no state: it shuts down without the drain.)
        platform = getattr(getattr(self.app, "state", None), "platform", None)
        if sig != signal.SIGTERM or self._draining or self.should_exit or platform is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        platform.draining = True
        if self.drain_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        # A timer thread rather than the event loop: this runs inside a signal handler. uvicorn looks at
        # should_exit every 0.1 s.
        timer = threading.Timer(self.drain_seconds, super().handle_exit, args=(sig, None))
        timer.daemon = True
        timer.start()
