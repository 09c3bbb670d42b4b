"""SIGTERM and SIGINT as a request to stop cleanly; a second one as "stop now".

A send (and the scheduling daemon) stops claiming, lets what the transport holds finish,
records it and gives the rest back. An operator who cannot wait sends the signal again:
the process exits at once, and the crash rules apply.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def graceful_stop(on_stop: Callable[[int], None]) -> Iterator[None]:
    """Within the block, the first stop signal calls `on_stop(signum)`; the second exits
    the process at once (128 + signum, as a shell reports a death by signal). Outside the
    main thread signals cannot be caught: the block then changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            sys.stderr.write("stopping now; unfinished messages become uncertain\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        on_stop(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
