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

    def take_up_to(self, count: int) -> int:
        """Block until at least one token is there; take up to `count`; return how many.
        Without a rate, all `count` at once."""
        if not self.rate:
            return count
        while True:
            with self._lock:
                self._refill()
                granted = min(count, int(self.tokens))
                if granted >= 1:
                    self.tokens -= granted
                    return granted
                wait = (1 - self.tokens) / self.rate
            time.sleep(min(wait, 1.0))

    def give_back(self, count: int) -> None:
        """Return tokens taken but not used (a claim found fewer rows than it could take)."""
        if self.rate and count > 0:
            with self._lock:
                self.tokens = min(self.capacity, self.tokens + count)

    def _refill(self) -> None:
        now = time.monotonic()
        assert self.rate is not None
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
