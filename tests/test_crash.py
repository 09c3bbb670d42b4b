"""Crash safety with real processes: SIGKILL mid-send, then resume; and two workers on one
send over PostgreSQL. Checked at the SMTP server: who got how many messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import SECRET
from smtp_server import SmtpServer

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.infra.db.engine import connect
from newsletter.infra.workspace import open_workspace
from newsletter.services.ledger import Ledger
from newsletter.services.sending import create_send, prepare
from newsletter.services.subscribers import SubscriberStore

ISSUE = "2026-12-welcome"


def newsletter(sample, database_url, server, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NEWSLETTER_WORKSPACE": str(sample.root),
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_SMTP__HOST": server.host,
        "NEWSLETTER_SMTP__PORT": str(server.port),
        "NEWSLETTER_SMTP__SECURITY": "none",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_mid_send_then_resume(sending, database_url):
    people = sending.add(300)
    batch, threads = 10, 2
    with SmtpServer() as server:
        worker = newsletter(
            sending.sample,
            database_url,
            server,
            "send",
            ISSUE,
            "--yes",
            "--transport",
            "smtp",
            "--batch-size",
            str(batch),
            "--concurrency",
            str(threads),
            "--rate",
            "400",
        )
        server.wait_for(80, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        killed_at = len(server.messages)
        assert killed_at < 300, "the send finished before it could be killed"

        resumed = newsletter(
            sending.sample, database_url, server, "send", "--resume", "1", "--transport", "smtp"
        )
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err.decode()

        ledger = Ledger(sending.engine)
        record = ledger.get(1)
        uncertain = {email for _, email, _ in ledger.deliveries_in(1, DeliveryStatus.UNCERTAIN)}
        received = server.by_recipient()
    assert record.status == SendStatus.DONE
    assert record.counts["sent"] + record.counts["uncertain"] == len(people)
    assert len(uncertain) <= batch * threads  # at most the batches in the transport's hands
    for i in range(len(people)):
        address = f"reader{i}@example.com"
        if address in uncertain:
            assert received.get(address, 0) <= 1
        else:
            assert received.get(address) == 1, address


def test_two_workers_share_one_send_on_postgresql(sample, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", postgres_url)
    workspace = open_workspace(sample.root)
    with connect(postgres_url) as engine, SmtpServer() as server:
        store = SubscriberStore(engine)
        from newsletter.domain.subscriber import Source
        from newsletter.services.subscribers import Context

        for i in range(400):
            store.add(f"reader{i}@example.com", context=Context(Source.CLI))
        record = create_send(Ledger(engine), prepare(workspace, engine, ISSUE, None), "smtp", None)
        workers = [
            newsletter(
                sample,
                postgres_url,
                server,
                "send",
                "--resume",
                str(record.id),
                "--batch-size",
                "7",
                "--concurrency",
                "2",
            )
            for _ in range(2)
        ]
        for worker in workers:
            _, err = worker.communicate(timeout=180)
            assert worker.returncode == 0, err.decode()
        final = Ledger(engine).get(record.id)
        received = server.by_recipient()
    assert final.status == SendStatus.DONE and final.counts["sent"] == 400
    assert sorted(received.values()) == [1] * 400
    # One connection per worker: two sessions means both workers sent.
    assert len({m.session_id for m in server.messages}) >= 2
