"""A progress bar for work that is usually quick: it appears only once the work has taken
over a second, on stderr, and is gone when the work ends (quick runs print nothing)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.markup import escape

from newsletter.cli.app import err

if TYPE_CHECKING:
    from rich.progress import Progress

SHOW_AFTER = 1.0  # seconds


class LateProgress:
    """Called as (done, total, item) by a service; `stop()` when the work ends."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.started = time.monotonic()
        self.bar: Progress | None = None
        self.task = 0

    def __call__(self, done: int, total: int, item: str) -> None:
        if not self.enabled:
            return
        if self.bar is None and time.monotonic() - self.started > SHOW_AFTER and done < total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[item]}"),
                console=err,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total, item="")
        if self.bar is not None:
            self.bar.update(self.task, completed=done, item=escape(item))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
