"""A worker's local journal: which deliveries it handed to the transport, and which the
server accepted or certainly did not, written as it happens (one append per event).

The database learns outcomes 20 at a time; this file knows them at once. When a worker
process dies, the worker that recovers its claims on the same machine replays the
journal: accepted -> sent, never pulled or certainly refused -> queued again, and only
what was in the server's hands at the moment of death stays "uncertain" (at most one
message per connection). Appends survive a killed process (they are in the kernel's page
cache), not a lost machine: a journal written before the last boot, or on another host,
is not trusted, and recovery falls back to the database's hand-over marks.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MAGIC = "newsletter-journal 1"


def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


class Journal:
    """Appends lines `P id` (handed over), `S id provider-id` (accepted) and `N id`
    (certainly not delivered). Each write is one line or a few, appended atomically."""

    def __init__(self, folder: Path, worker_id: str, host: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{worker_id}.log"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        header = f"{MAGIC} host={host} boot={boot_id() or '-'} pid={os.getpid()}\n"
        os.write(self._fd, header.encode())

    def write(self, lines: str) -> None:
        os.write(self._fd, lines.encode("ascii"))

    def close(self, *, remove: bool = True) -> None:
        """A worker that stops cleanly has recorded everything: its journal is not needed.
        One that stops on an error keeps it for whoever recovers its claims."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()


@dataclass
class Replay:
    pid: int
    handed: set[int] = field(default_factory=set)
    sent: dict[int, str | None] = field(default_factory=dict)
    unsent: set[int] = field(default_factory=set)


def replay(folder: Path, worker_id: str, host: str) -> Replay | None:
    """What a dead worker's journal says, or None when it cannot be trusted."""
    path = folder / f"{worker_id}.log"
    try:
        text = path.read_text("ascii", errors="replace")
    except OSError:
        return None
    lines = text.split("\n")
    current = boot_id()
    expected = f"{MAGIC} host={host} boot={current} pid="
    if current is None or not lines[0].startswith(expected):
        return None
    try:
        found = Replay(int(lines[0][len(expected) :]))
    except ValueError:
        return None
    for line in lines[1:]:
        parts = line.split(" ")
        try:
            delivery_id = int(parts[1])
        except (IndexError, ValueError):
            continue  # the last line of a killed writer may be cut short: ignore it
        if parts[0] == "P":
            found.handed.add(delivery_id)
        elif parts[0] == "S" and len(parts) == 3:
            found.sent[delivery_id] = None if parts[2] == "-" else parts[2]
        elif parts[0] == "N":
            found.unsent.add(delivery_id)
    return found


def forget(folder: Path, worker_id: str) -> None:
    with contextlib.suppress(OSError):
        (folder / f"{worker_id}.log").unlink()
