"""A worker's view of who, among the recipients it has claimed, may no longer be sent to.

A claim checks each subscriber's status once; a batch can take seconds to go out, and an
unsubscribe, bounce, complaint, erasure or pause that commits meanwhile must still be
honoured within a second. One query over the worker's claimed rows, re-run by whichever
thread finds the last answer older than `max_age`, serves every message of every thread:
the database sees a few queries a second, not one per message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from newsletter.services.claims import WorkQueue

MAX_AGE = 0.5  # seconds; with the time a message takes to leave, well inside one second


class StatusWatch:
    def __init__(
        self,
        queue: WorkQueue,
        send_id: int,
        worker_id: str,
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.send_id = send_id
        self.worker_id = worker_id
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._blocked: dict[int, str] = {}
        self._read_at = float("-inf")  # when the query behind `_blocked` started

    def reason(self, subscriber_id: int | None) -> str | None:
        """Why this subscriber must not get the message now (None: go ahead)."""
        if self.clock() - self._read_at > self.max_age:
            self._refresh()
        return self._blocked.get(subscriber_id)  # type: ignore[arg-type]

    def _refresh(self) -> None:
        with self._lock:
            if self.clock() - self._read_at <= self.max_age:
                return  # another thread refreshed it while this one waited
            started = self.clock()  # everything committed before this moment is seen
            blocked = self.queue.blocked(self.send_id, self.worker_id)
            self._blocked = blocked
            self._read_at = started
