"""A token bucket shared by a send's threads: messages per second, with a small burst."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate or 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int = 1) -> None:
        """Block until `count` tokens are available (no limit when rate is None)."""
        if not self.rate:
            return
        needed = float(count)
        while True:
            with self._lock:
                now = time.monotonic()
                self.tokens = min(
                    max(self.capacity, needed), self.tokens + (now - self.updated) * self.rate
                )
                self.updated = now
                if self.tokens >= needed:
                    self.tokens -= needed
                    return
                wait = (needed - self.tokens) / self.rate
            time.sleep(min(wait, 1.0))
