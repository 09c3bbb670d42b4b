"""Benchmark: building the sample issue, and personalizing it per recipient.

Run on purpose (`make bench` or `python bench/render.py`), never in the test suite.
Targets: build under 50 ms; personalization at least 50,000 recipients/s and at least
20 times the naive way (a Jinja + MJML render per recipient), measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from newsletter.domain.personalize import Recipient, personalize
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

ROOT = Path(__file__).resolve().parents[1]


def recipients(count: int, base: str) -> list[Recipient]:
    return [
        Recipient(
            email=f"reader{i}@example.com",
            first_name=f"Reader {i}" if i % 5 else None,
            unsubscribe_url=f"{base}/u/tok{i:08d}",
            preferences_url=f"{base}/preferences/tok{i:08d}",
        )
        for i in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issue", default="2027-01-evidence")
    parser.add_argument("--builds", type=int, default=30)
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--naive", type=int, default=300)
    args = parser.parse_args()

    workspace = open_workspace(ROOT)
    started = time.perf_counter()
    builder = Builder(workspace)
    first = builder.build(args.issue)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(args.builds):
        started = time.perf_counter()
        result = builder.build(args.issue)
        warm.append(time.perf_counter() - started)
    build_ms = statistics.median(warm) * 1000

    rendered = result.rendered
    people = recipients(args.recipients, workspace.settings.base_url)
    started = time.perf_counter()
    for person in people:
        personalize(rendered, person)
    fast_rate = len(people) / (time.perf_counter() - started)

    # The naive way: a full Jinja + MJML render for every recipient, then their values.
    issue = builder.library.compose(args.issue)
    started = time.perf_counter()
    for person in people[: args.naive]:
        personalize(builder.renderer.render(issue).rendered, person)
    naive_rate = args.naive / (time.perf_counter() - started)
    ratio = fast_rate / naive_rate

    table = Table(
        title=f"render benchmark: {args.issue} ({len(first.probe.html) / 1024:.1f} KB HTML)"
    )
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    rows = [
        ("build, first (templates compiled)", f"{cold * 1000:.1f} ms", "", ""),
        (f"build, median of {args.builds}", f"{build_ms:.1f} ms", "< 50 ms", build_ms < 50),
        ("personalize", f"{fast_rate:,.0f} recipients/s", ">= 50,000/s", fast_rate >= 50_000),
        ("naive (Jinja + MJML per recipient)", f"{naive_rate:,.0f} recipients/s", "", ""),
        ("personalize / naive", f"{ratio:.0f}x", ">= 20x", ratio >= 20),
    ]
    for name, value, target, met in rows:
        table.add_row(name, value, target, "" if met == "" else ("yes" if met else "NO"))
    Console().print(table)
    return 0 if build_ms < 50 and fast_rate >= 50_000 and ratio >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
