"""Crash safety with real processes over the SMTP test server: kill -9 at random moments,
SIGTERM and SIGINT, then resume; two workers on one send over PostgreSQL. Checked at the
server: who got how many messages."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import SECRET
from smtp_server import SmtpServer

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.infra.db.engine import connect
from newsletter.infra.workspace import open_workspace
from newsletter.services.ledger import Ledger
from newsletter.services.sending import create_send, plan_send
from newsletter.services.subscribers import SubscriberStore

ISSUE = "2026-12-welcome"
THREADS = 4
DELAY = 0.01  # seconds the server takes per message


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


def send_args(*extra: str) -> list[str]:
    return [
        "send",
        ISSUE,
        "--yes",
        "--transport",
        "smtp",
        "--batch-size",
        "100",
        "--concurrency",
        str(THREADS),
        *extra,
    ]


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> str:
    _, err = process.communicate(timeout=timeout)
    return err.decode()


def assert_each_once_but_uncertain(ledger, send_id, server, addresses) -> set[str]:
    uncertain = {e for _, e, _ in ledger.deliveries_in(send_id, DeliveryStatus.UNCERTAIN)}
    received = server.by_recipient()
    for address in addresses:
        if address in uncertain:
            assert received.get(address, 0) <= 1, address
        else:
            assert received.get(address) == 1, (address, received.get(address))
    return uncertain


def test_kill_9_at_random_moments_leaves_a_few_messages_uncertain(sample, tmp_path, monkeypatch):
    """2,000 recipients, 4 connections, 10 ms a message, killed at a random moment: at
    most the message each connection had in the server's hands is uncertain (the worker's
    journal says what the server accepted), everyone else gets exactly one message."""
    seed = int(os.environ.get("CRASH_SEED", time.time()))
    rng = random.Random(seed)
    for run in range(3):
        url = f"sqlite:///{tmp_path / f'crash-{run}.db'}"
        with connect(url) as engine, SmtpServer(delay=DELAY) as server:
            addresses = _subscribers(engine, 2000)
            worker = newsletter(sample, url, server, *send_args())
            server.wait_for(1, timeout=60)
            time.sleep(rng.uniform(0.0, 3.5))  # the whole send takes about 5 s
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            assert len(server.messages) < 2000, f"finished before the kill (seed {seed})"
            ledger = Ledger(engine)
            [record] = ledger.list()
            resumed = newsletter(sample, url, server, "send", "--resume", str(record.id))
            assert resumed.wait(timeout=120) == 0, finish(resumed)
            final = ledger.get(record.id)
            uncertain = assert_each_once_but_uncertain(ledger, record.id, server, addresses)
        assert final.status == SendStatus.DONE
        assert final.counts["sent"] + final.counts["uncertain"] == 2000
        assert len(uncertain) <= THREADS, f"{len(uncertain)} uncertain (seed {seed})"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_cleanly_and_resume_without_duplicates(sample, tmp_path, signum):
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    with connect(url) as engine, SmtpServer(delay=DELAY) as server:
        addresses = _subscribers(engine, 1000)
        worker = newsletter(sample, url, server, *send_args())
        server.wait_for(200, timeout=60)
        stopped_at = time.monotonic()
        worker.send_signal(signum)
        assert worker.wait(timeout=30) == 3, finish(worker)
        assert time.monotonic() - stopped_at < 10
        err = finish(worker)
        assert "stopped" in err and "--resume" in err
        ledger = Ledger(engine)
        [record] = ledger.list()
        counts = ledger.get(record.id).counts
        assert counts["uncertain"] == 0 and counts["claimed"] == 0, counts
        assert counts["sent"] == len(server.messages) < 1000
        resumed = newsletter(sample, url, server, "send", "--resume", str(record.id))
        assert resumed.wait(timeout=120) == 0, finish(resumed)
        assert sorted(server.by_recipient().values()) == [1] * 1000
        assert set(server.by_recipient()) == set(addresses)
        assert ledger.get(record.id).counts["sent"] == 1000


def test_resend_uncertain_right_after_a_crash_recovers_first(sample, tmp_path):
    url = f"sqlite:///{tmp_path / 'resend.db'}"
    with connect(url) as engine, SmtpServer(delay=DELAY) as server:
        addresses = _subscribers(engine, 1000)
        server.hold_after(250)
        worker = newsletter(sample, url, server, *send_args())
        # Killed while each connection has a message in the server's hands with no reply
        # yet: a kill at a moment with none in flight (e.g. between two batches) would
        # leave nothing uncertain and test nothing.
        server.wait_held(THREADS, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        server.release()
        ledger = Ledger(engine)
        [record] = ledger.list()
        resumed = newsletter(
            sample, url, server, "send", "--resume", str(record.id), "--resend-uncertain"
        )
        assert resumed.wait(timeout=120) == 0
        err = finish(resumed)
        final = ledger.get(record.id)
        received = server.by_recipient()
    requeued = int(err.split(" uncertain recipient(s) queued again")[0].rsplit(" ", 1)[-1])
    assert requeued == THREADS, err
    assert f"{requeued} of them from the crash just recovered" in err
    assert final.status == SendStatus.DONE and final.counts["uncertain"] == 0
    assert final.counts["sent"] == 1000
    assert set(received) == set(addresses)
    assert sum(received.values()) - 1000 <= requeued  # duplicates only among those resent


def test_one_of_two_postgresql_workers_killed(sample, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", postgres_url)
    workspace = open_workspace(sample.root)
    with connect(postgres_url) as engine, SmtpServer(delay=DELAY) as server:
        addresses = _subscribers(engine, 1500)
        record = create_send(Ledger(engine), plan_send(workspace, engine, ISSUE, transport="smtp"))
        args = ("send", "--resume", str(record.id), "--batch-size", "50", "--concurrency", "2")
        workers = [newsletter(sample, postgres_url, server, *args) for _ in range(2)]
        server.wait_for(300, timeout=60)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=30)
        # The survivor finishes the send; the dead worker's claims are recovered by it.
        assert workers[1].wait(timeout=180) == 0, finish(workers[1])
        ledger = Ledger(engine)
        final = ledger.get(record.id)
        uncertain = assert_each_once_but_uncertain(ledger, record.id, server, addresses)
    assert final.status == SendStatus.DONE
    assert final.counts["sent"] + final.counts["uncertain"] == 1500
    assert len(uncertain) <= 2  # the killed worker's two connections


def test_two_workers_share_one_send_on_postgresql(sample, postgres_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", postgres_url)
    workspace = open_workspace(sample.root)
    with connect(postgres_url) as engine, SmtpServer() as server:
        _subscribers(engine, 400)
        record = create_send(Ledger(engine), plan_send(workspace, engine, ISSUE, transport="smtp"))
        args = ("send", "--resume", str(record.id), "--batch-size", "7", "--concurrency", "2")
        workers = [newsletter(sample, postgres_url, server, *args) for _ in range(2)]
        for worker in workers:
            assert worker.wait(timeout=180) == 0, finish(worker)
        final = Ledger(engine).get(record.id)
        received = server.by_recipient()
    assert final.status == SendStatus.DONE and final.counts["sent"] == 400
    assert sorted(received.values()) == [1] * 400
    # One connection per worker: two sessions means both workers sent.
    assert len({m.session_id for m in server.messages}) >= 2


def _subscribers(engine, count: int) -> list[str]:
    from newsletter.domain.subscriber import Source
    from newsletter.services.subscribers import Context

    store = SubscriberStore(engine)
    addresses = [f"reader{i}@example.com" for i in range(count)]
    for address in addresses:
        store.add(address, context=Context(Source.CLI))
    return addresses


def test_a_second_signal_exits_at_once_and_the_crash_rules_apply(sample, tmp_path):
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    with connect(url) as engine, SmtpServer(delay=1.5) as server:
        addresses = _subscribers(engine, 6)
        worker = newsletter(sample, url, server, *send_args("--concurrency", "1"))
        server.wait_for(1, timeout=60)
        time.sleep(0.3)  # the second message is now in the server's hands, for 1.5 s
        worker.send_signal(signal.SIGTERM)  # would wait for it to finish...
        time.sleep(0.3)
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # ...but not twice
        assert worker.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - asked < 1.0
        ledger = Ledger(engine)
        [record] = ledger.list()
        resumed = newsletter(sample, url, server, "send", "--resume", str(record.id))
        assert resumed.wait(timeout=120) == 0, finish(resumed)
        uncertain = assert_each_once_but_uncertain(ledger, record.id, server, addresses)
    assert len(uncertain) <= 1  # only the message the server held
