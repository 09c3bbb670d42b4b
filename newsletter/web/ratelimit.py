"""A per-key sliding-window limit, in memory: enough for one `serve` process."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque

MAX_KEYS = 100_000


def client_key(ip: str | None) -> str:
    """IPv6 clients get whole /64s, so rotating addresses within one does not help."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= moment - self.window:
                hits.popleft()
            allowed = len(hits) < self.limit
            if allowed:
                hits.append(moment)
            self._hits[key] = hits  # most recently seen last
            while len(self._hits) > MAX_KEYS:  # bounded memory: forget the longest idle
                self._hits.popitem(last=False)
            return allowed
