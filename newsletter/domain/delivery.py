"""Delivery and send states, and the retry schedule."""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import StrEnum


class SendStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"  # a worker has it; `handed_at` says whether the transport got it
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"  # handed to the transport, then the worker died


TERMINAL = frozenset(
    {DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.UNCERTAIN}
)


def backoff_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = 2.0,
    cap: float = 600.0,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt `attempt + 1`: exponential with full jitter, never
    sooner than the server asked (Retry-After, X-RateLimit-Reset)."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    delay = ceiling * (0.5 + 0.5 * jitter())
    return max(delay, retry_after or 0.0)
