"""Benchmark: SendGrid Event Webhook ingestion, end to end, against a bare baseline.

End to end: `newsletter serve` in a process of its own; this process posts signed arrays of
10,000 events (a mix of delivered, open, click, bounce, spamreport, unsubscribe) over HTTP:
signature check, dedupe, storage and status changes. Baseline, in the same run: an
executemany INSERT of the same rows into the same table. Reported: events/s, the ratio
(target >= 20,000 events/s on SQLite and >= 50% of the baseline) and the answer time of one
10,000-event post (target < 2 s).

Medians over `--rounds` pairs (baseline, then end to end, on fresh events each time).
Run on purpose: `python bench/events.py [--posts 5] [--rounds 3] [--postgres ADMIN_URL]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table
from send import KEY, free_port, populate, workspace_in  # bench/send.py
from sqlalchemy import delete, insert

from newsletter.infra.db.engine import connect
from newsletter.infra.db.schema import provider_events
from newsletter.services.feedback import row_of

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["delivered", "open", "click", "processed", "bounce", "spamreport", "unsubscribe"]
SUBSCRIBERS = 50_000


def events(count: int, start: int) -> list[dict]:
    found = []
    for i in range(start, start + count):
        sid = i % SUBSCRIBERS + 1
        kind = KINDS[i % len(KINDS)] if i % 50 == 0 else KINDS[i % 4]
        found.append(
            {
                "event": kind,
                "email": f"reader{sid - 1}@example.com",
                "sg_event_id": f"bench-{i}-{uuid.uuid4().hex[:8]}",
                "timestamp": int(time.time()),
                "subscriber_id": str(sid),
                "stream": "send-1",
                "delivery": f"sub-{sid}",
                **({"type": "bounce"} if kind == "bounce" else {}),
                **({"url": "https://example.org/a"} if kind == "click" else {}),
            }
        )
    return found


def run(url: str, posts: int, size: int, rounds: int) -> dict[str, float]:
    """Rounds of (bare baseline, end to end) on fresh events each time; medians reported,
    so one noisy moment on a shared machine does not decide the ratio."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    folder = Path(tempfile.mkdtemp())
    workspace_in(folder, url)
    populate(url, SUBSCRIBERS)
    port = free_port()
    env = {**os.environ, "SENDGRID_WEBHOOK_PUBLIC_KEY": public, "NEWSLETTER_SECRET_KEY": KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bare_rates, pipeline_rates, answers = [], [], []
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with connect(url) as engine:
            for round_ in range(rounds):
                first = round_ * 2 * posts * size
                baseline = [events(size, first + n * size) for n in range(posts)]
                received = datetime.now(UTC)
                rows = [[row_of(e, received) for e in batch] for batch in baseline]
                started = time.perf_counter()
                for batch in rows:
                    with engine.begin() as connection:
                        connection.execute(insert(provider_events), batch)
                bare_rates.append(posts * size / (time.perf_counter() - started))
                with engine.begin() as connection:
                    connection.execute(
                        delete(provider_events).where(provider_events.c.event_id.like("bench-%"))
                    )
                start = first + posts * size
                bodies = [json.dumps(events(size, start + n * size)).encode() for n in range(posts)]
                started = time.perf_counter()
                for body in bodies:
                    answers.append(post(port, key, body))
                pipeline_rates.append(posts * size / (time.perf_counter() - started))
                with engine.begin() as connection:  # each round starts from the same table
                    connection.execute(
                        delete(provider_events).where(provider_events.c.event_id.like("bench-%"))
                    )
    finally:
        server.terminate()
        server.wait()
    return {
        "bare": statistics.median(bare_rates),
        "pipeline": statistics.median(pipeline_rates),
        "ratios": [p / b for p, b in zip(pipeline_rates, bare_rates, strict=True)],
        "answer": statistics.median(answers),
        "worst": max(answers),
    }


def post(port: int, key: ec.EllipticCurvePrivateKey, body: bytes) -> float:
    """One signed post, as SendGrid makes it; returns the answer time."""
    stamp = str(int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    sent = time.perf_counter()
    response = httpx.post(
        f"http://127.0.0.1:{port}/webhooks/sendgrid", content=body, headers=headers, timeout=60
    )
    if response.status_code != 200:
        raise SystemExit(f"webhook answered {response.status_code}: {response.text}")
    return time.perf_counter() - sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="baseline/pipeline pairs")
    parser.add_argument("--postgres", help="admin URL: also measure on PostgreSQL")
    args = parser.parse_args()
    table = Table(title="event webhook ingestion")
    for column in (
        "store",
        "bare insert",
        "end to end",
        "ratio",
        "per round",
        "answer med/max",
    ):
        table.add_column(column)
    stores = [("sqlite", None)]
    if args.postgres:
        stores.append(("postgresql", args.postgres))
    for name, admin in stores:
        if admin is None:
            url = f"sqlite:///{tempfile.mkdtemp()}/events.db"
            result = run(url, args.posts, args.size, args.rounds)
        else:
            import psycopg

            db = f"newsletter_events_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{db}"')
            try:
                result = run(admin.rsplit("/", 1)[0] + f"/{db}", args.posts, args.size, args.rounds)
            finally:
                with psycopg.connect(admin, autocommit=True) as connection:
                    connection.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        table.add_row(
            name,
            f"{result['bare']:,.0f}/s",
            f"{result['pipeline']:,.0f}/s",
            f"{result['pipeline'] / result['bare']:.0%}",
            " ".join(f"{r:.0%}" for r in result["ratios"]),
            f"{result['answer']:.2f}/{result['worst']:.2f} s",
        )
    Console().print(table)
    print("targets: >= 20,000 events/s on SQLite, >= 50% of bare, answer < 2 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
