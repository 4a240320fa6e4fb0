"""Sign-in throttling: after a few failed attempts for one username from one address, further attempts are
refused for a while without checking the password, so guessing costs the guesser time, not the server CPU
(each argon2 check takes ~50-100 ms). Kept per process, like the API's rate limits."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_FAILURES = 5
WINDOW_SECONDS = 600.0
MAX_TRACKED = 10_000  # a flood of distinct names must not grow memory without bound


class SignInThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self._clock()
        failures = self._failures.get(key, deque())
        while failures and now - failures[0] > WINDOW_SECONDS:
            failures.popleft()
        return failures

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        failures = self._recent((address, username.lower()))
        if len(failures) < MAX_FAILURES:
            return 0
        return max(1, int(WINDOW_SECONDS - (self._clock() - failures[0])) + 1)

    def failed(self, address: str, username: str) -> None:
        key = (address, username.lower())
        if key not in self._failures and len(self._failures) >= MAX_TRACKED:
            self._failures.clear()
        failures = self._recent(key)
        failures.append(self._clock())
        self._failures[key] = failures

    def succeeded(self, address: str, username: str) -> None:
        self._failures.pop((address, username.lower()), None)
