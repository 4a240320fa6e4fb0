"""A deployment: one backend serving one upstream model, with its health (cooldown) and its slots."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hearth.config import DeploymentConfig
from hearth.gateway.backends.base import Backend
from hearth.gateway.limiter import PriorityLimiter


@dataclass(eq=False)
class Deployment:
    key: str  # "backend" or "backend/model": the label in metrics and logs
    backend: Backend
    model: str | None
    config: DeploymentConfig
    limiter: PriorityLimiter
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    last_error: str | None = field(default=None)
    last_error_at: float | None = None  # wall-clock time of last_error (for people; routing uses monotonic)

    def cooling(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) < self.cooldown_until

    @property
    def load(self) -> int:
        return self.limiter.load

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.cooldown_until = 0.0

    def record_failure(self, error: str) -> bool:
        """Count a failure; return True when it puts the deployment into cooldown."""
        self.consecutive_failures += 1
        self.last_error = error
        self.last_error_at = time.time()
        if self.consecutive_failures >= self.config.failures_before_cooldown:
            self.cooldown_until = time.monotonic() + self.config.cooldown
            return True
        return False

    def health(self, now: float | None = None) -> dict[str, Any]:
        """What `hearth models`, /v1/models and /readyz show: ok, failing (recent errors, still tried) or
        cooling down (skipped until cooldown_until, a wall-clock time), with the last error."""
        now = now if now is not None else time.monotonic()
        cooling = self.cooling(now)
        status = "cooling_down" if cooling else ("failing" if self.consecutive_failures else "ok")
        info: dict[str, Any] = {"status": status, "consecutive_failures": self.consecutive_failures}
        if cooling:
            remaining = self.cooldown_until - now
            info["cooldown_seconds_left"] = round(remaining, 1)
            info["cooldown_until"] = _iso(time.time() + remaining)
        if self.last_error is not None:
            info["last_error"] = self.last_error
            info["last_error_at"] = _iso(self.last_error_at) if self.last_error_at else None
        return info


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
