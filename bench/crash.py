"""The crash window, measured: kill -9 a send at random moments and count what it left.

SQLite, 2,000 recipients, the SMTP test server taking 10 ms a message, 4 connections,
batches of 100 (the shape of the report that found 400 uncertain every time). For each
run: how many recipients ended uncertain, how many of those the server had in fact
received, and, after `send --resume`, whether anybody who is not uncertain got a message
twice or not at all. `--postgres URL` runs the same with two worker processes on one send
over PostgreSQL and kills one of them.

Run on purpose: `python bench/crash.py [--runs 5]`, never in the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from send import ISSUE, KEY, populate, workspace_in  # noqa: E402  (bench/send.py)
from smtp_server import SmtpServer  # noqa: E402

from newsletter.domain.delivery import DeliveryStatus  # noqa: E402
from newsletter.infra.db.engine import connect  # noqa: E402
from newsletter.services.ledger import Ledger  # noqa: E402
from newsletter.services.sending import create_send, plan_send  # noqa: E402


def newsletter(url: str, server: SmtpServer, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": KEY,
        "NEWSLETTER_SMTP__HOST": server.host,
        "NEWSLETTER_SMTP__PORT": str(server.port),
        "NEWSLETTER_SMTP__SECURITY": "none",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def one_run(url: str, args: argparse.Namespace, rng: random.Random, workers: int) -> dict:
    populate(url, args.recipients)
    workspace = workspace_in(Path(tempfile.mkdtemp()), url)
    with connect(url) as engine, SmtpServer(delay=args.delay) as server:
        record = create_send(Ledger(engine), plan_send(workspace, engine, ISSUE, transport="smtp"))
        worker_args = (
            "send",
            "--resume",
            str(record.id),
            "--batch-size",
            str(args.batch),
            "--concurrency",
            str(args.concurrency),
        )
        processes = [newsletter(url, server, *worker_args) for _ in range(workers)]
        server.wait_for(1, timeout=60)
        full = args.recipients * args.delay / args.concurrency / workers
        time.sleep(rng.uniform(0.05, 0.8) * full)
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait()
        at_kill = len(server.messages)
        for process in processes[1:]:
            process.wait()
        # The resumed worker recovers the dead one's claims first: then uncertain is known.
        resumed = newsletter(url, server, "send", "--resume", str(record.id))
        resumed.wait()
        ledger = Ledger(engine)
        uncertain = {e for _, e, _ in ledger.deliveries_in(record.id, DeliveryStatus.UNCERTAIN)}
        received = server.by_recipient()
        final = ledger.get(record.id)
    everyone = [f"reader{i}@example.com" for i in range(args.recipients)]
    wrong = [a for a in everyone if a not in uncertain and received.get(a) != 1]
    return {
        "at_kill": at_kill,
        "uncertain": len(uncertain),
        "delivered": sum(1 for a in uncertain if received.get(a)),
        "wrong": len(wrong),
        "status": str(final.status),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds per message")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--postgres", help="admin URL: also run two workers on PostgreSQL")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    table = Table(title=f"kill -9 at random moments (seed {seed})")
    for column in ("store", "run", "at kill", "uncertain", "of which delivered", "wrong", "end"):
        table.add_column(column, justify="right")
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            row = one_run(f"sqlite:///{folder}/crash.db", args, rng, workers=1)
        table.add_row("sqlite", str(run + 1), *(str(v) for v in row.values()))
    if args.postgres:
        import psycopg

        for run in range(args.runs):
            name = f"newsletter_crash_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
                row = one_run(url, args, rng, workers=2)
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            table.add_row(
                "postgresql, 1 of 2 killed", str(run + 1), *(str(v) for v in row.values())
            )
    Console().print(table)
    print(
        f"worst case by design: {args.concurrency} (one message per connection) when the"
        f" worker that recovers is on the same machine; {args.concurrency} x 20 ="
        f" {args.concurrency * 20} per process otherwise"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
