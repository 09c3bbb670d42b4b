"""Benchmark: importing a generated CSV of 1,000,000 rows into SQLite.

Targets: at most 1.5 times the floor measured in the same run (reading the same file and
validating every address with email-validator alone, as an import must at the least),
under 60 s, and under 200 MB peak memory (RSS of this process). The file is made first and
not timed; the profile of where the time goes is printed with --profile.
Run on purpose (`make bench-import` or `python bench/import.py`), never in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from rich.console import Console
from rich.table import Table

from newsletter.infra.db.engine import connect
from newsletter.services.importer import import_csv

TOPICS = ["evidence", "safety", "treatments", "basics", "consultation"]


def generate(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Email Address", "first_name", "last_name", "tags", "city", "plan"])
        for i in range(rows):
            writer.writerow(
                [
                    f"Reader.{i}@Example{i % 997}.com",
                    f"First{i}",
                    f"Last {i}",
                    ";".join(TOPICS[: i % 4]),
                    f"City {i % 500}",
                    "gold" if i % 7 == 0 else "",
                ]
            )


def floor_seconds(path: Path) -> float:
    """Read the file and validate each address with email-validator, nothing else."""
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        next(rows)
        for row in rows:
            with contextlib.suppress(EmailNotValidError):
                validate_email(row[0], check_deliverability=False)
    return time.perf_counter() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "people.csv"
        generate(csv_path, args.rows)
        baseline_mb = peak_rss_mb()
        size_mb = csv_path.stat().st_size / 1e6
        floor = floor_seconds(csv_path)
        with connect(f"sqlite:///{folder}/bench.db") as engine:
            profiler = cProfile.Profile() if args.profile else None
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            report = import_csv(engine, csv_path)
            if profiler:
                profiler.disable()
            elapsed = time.perf_counter() - started
        peak = peak_rss_mb()
    table = Table(title=f"import benchmark: {args.rows:,} rows, {size_mb:.0f} MB CSV, SQLite")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    ratio = elapsed / floor
    table.add_row("time", f"{elapsed:.1f} s", "< 60 s", "yes" if elapsed < 60 else "NO")
    table.add_row("floor: read + email-validator", f"{floor:.1f} s", "", "")
    table.add_row("time / floor", f"{ratio:.2f}", "<= 1.5", "yes" if ratio <= 1.5 else "NO")
    table.add_row("rows/s", f"{args.rows / elapsed:,.0f}", "", "")
    table.add_row("peak RSS", f"{peak:.0f} MB", "< 200 MB", "yes" if peak < 200 else "NO")
    table.add_row("peak RSS before import", f"{baseline_mb:.0f} MB", "", "")
    table.add_row("added / invalid", f"{report.added:,} / {report.invalid:,}", "", "")
    Console().print(table)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return 0 if elapsed < 60 and peak < 200 and ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
