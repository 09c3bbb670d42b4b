"""Benchmark: the scheduling daemon.

- pick-up latency: 20 schedules made by another process (this one) at random offsets
  while a daemon runs; from each due time to its send being created (the send's
  `created_at`). Targets: max <= 5 s, median <= 1.5 s.
- idle CPU: the daemon's user + system time over 60 s with nothing due, from /proc.
  Target: < 1% of a core.
- start-up: a daemon's time from launch to "ready" (lock taken, schedules mirrored) with
  10,000 future schedules, against its time with none, measured in the same run.
  Target: < 2 s.

Run on purpose: `python bench/schedule.py [--quick]`, never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from send import KEY, populate, workspace_in  # noqa: E402  (bench/send.py)
from sqlalchemy import insert  # noqa: E402

from newsletter.infra.db.engine import connect  # noqa: E402
from newsletter.infra.db.schema import schedules  # noqa: E402
from newsletter.infra.workspace import open_workspace  # noqa: E402
from newsletter.services.ledger import Ledger  # noqa: E402
from newsletter.services.scheduling import ScheduleBook  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, url: str) -> None:
        self.started = time.perf_counter()
        self.active_after: float | None = None
        self._active = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "daemon", "--json-logs"],
            cwd=ROOT,
            env={**os.environ, "NEWSLETTER_DATABASE_URL": url, "NEWSLETTER_SECRET_KEY": KEY},
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if json.loads(line).get("event") == "ready" and not self._active.is_set():
                self.active_after = time.perf_counter() - self.started
                self._active.set()

    def wait_active(self) -> float:
        if not self._active.wait(60):
            raise SystemExit("the daemon did not become active")
        assert self.active_after is not None
        return self.active_after

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def sample_copy(folder: Path, issues: int) -> Path:
    """The sample workspace with `issues` more issue files (an issue is scheduled once)."""
    root = folder / "workspace"
    root.mkdir()
    shutil.copy(ROOT / "newsletter.toml", root)
    for name in ("issues", "templates"):
        shutil.copytree(ROOT / name, root / name)
    welcome = (root / "issues" / "2026-12-welcome.md").read_text()
    for i in range(issues):
        (root / "issues" / f"bench-{i:02d}.md").write_text(welcome)
    os.environ["NEWSLETTER_WORKSPACE"] = str(root)
    return root


def latency(count: int, spread: float) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/schedule.db"
        root = sample_copy(Path(folder), count)
        workspace_in(Path(folder), url)
        workspace = open_workspace(root)
        populate(url, 10)
        daemon = Daemon(url)
        daemon.wait_active()
        rng = random.Random(7)
        with connect(url) as engine:
            book = ScheduleBook(workspace, engine)
            due = []
            for i in range(count):
                at = datetime.now(UTC) + timedelta(seconds=2 + rng.uniform(0, spread))
                record = book.schedule_issue(f"bench-{i:02d}", at.strftime("%Y-%m-%d %H:%M:%S.%f"))
                due.append(record)
                time.sleep(rng.uniform(0, spread / count))
            deadline = time.monotonic() + spread + 30
            while time.monotonic() < deadline:
                if all(book.get(r.id).send_id for r in due):
                    break
                time.sleep(0.5)
            ledger = Ledger(engine)
            os.environ.pop("NEWSLETTER_WORKSPACE")
            delays = []
            for record in due:
                fired = book.get(record.id)
                if fired.send_id is None:
                    raise SystemExit(f"schedule #{record.id} never fired")
                created = ledger.get(fired.send_id).created_at
                delays.append((created - record.due_at).total_seconds())
        daemon.stop()
    return delays


def idle_cpu(seconds: float) -> float:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/idle.db"
        workspace_in(Path(folder), url)
        populate(url, 10)
        daemon = Daemon(url)
        daemon.wait_active()
        time.sleep(2)
        before = daemon.cpu_seconds()
        time.sleep(seconds)
        used = daemon.cpu_seconds() - before
        daemon.stop()
    return used / seconds


def startup(count: int) -> tuple[float, float]:
    results = []
    for n in (0, count):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/start.db"
            workspace_in(Path(folder), url)
            populate(url, 10)
            now = datetime.now(UTC)
            with connect(url) as engine, engine.begin() as connection:
                rows = [
                    {
                        "issue_slug": f"issue-{i}",
                        "timezone": "UTC",
                        "due_at": now + timedelta(days=1, minutes=i),
                        "again": False,
                        "state": "scheduled",
                        "created_at": now,
                        "updated_at": now,
                        "changed_by": "bench",
                    }
                    for i in range(n)
                ]
                if rows:
                    connection.execute(insert(schedules), rows)
            daemon = Daemon(url)
            results.append(daemon.wait_active())
            daemon.stop()
    return results[0], results[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a first look")
    args = parser.parse_args()
    count, spread, idle = (5, 10.0, 15.0) if args.quick else (20, 60.0, 60.0)
    delays = latency(count, spread)
    cpu = idle_cpu(idle)
    empty, full = startup(10_000)
    table = Table(title="scheduling daemon")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    median, worst = statistics.median(delays), max(delays)
    table.add_row(
        f"pick-up latency, median of {count}",
        f"{median:.2f} s",
        "<= 1.5 s",
        "yes" if median <= 1.5 else "NO",
    )
    table.add_row(
        f"pick-up latency, max of {count}",
        f"{worst:.2f} s",
        "<= 5 s",
        "yes" if worst <= 5 else "NO",
    )
    table.add_row(
        f"idle CPU over {idle:.0f} s", f"{cpu:.2%} of a core", "< 1%", "yes" if cpu < 0.01 else "NO"
    )
    table.add_row("start-up to ready, no schedules", f"{empty:.2f} s", "", "")
    table.add_row(
        "start-up to ready, 10,000 schedules",
        f"{full:.2f} s",
        "< 2 s",
        "yes" if full < 2 else "NO",
    )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
