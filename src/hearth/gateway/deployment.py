"""A deployment: one backend serving one upstream model, with its health (cooldown) and its slots."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
        if self.consecutive_failures >= self.config.failures_before_cooldown:
            self.cooldown_until = time.monotonic() + self.config.cooldown
            return True
        return False
