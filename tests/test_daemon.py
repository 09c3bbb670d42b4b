"""The scheduling daemon as a real process: schedules made by another process fire on
time, once; one daemon is active per database and a standby takes over; a killed daemon's
send is finished after a restart without duplicates; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SECRET
from smtp_server import SmtpServer

from newsletter.domain.subscriber import Source
from newsletter.services.ledger import Ledger
from newsletter.services.scheduling import ScheduleBook
from newsletter.services.subscribers import Context

ISSUE = "2026-12-welcome"


class DaemonProcess:
    """`newsletter daemon --json-logs` in a subprocess, its log lines collected."""

    def __init__(self, sample, database_url: str, **env: str) -> None:
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "daemon", "--json-logs"],
            env={
                **os.environ,
                "NEWSLETTER_WORKSPACE": str(sample.root),
                "NEWSLETTER_DATABASE_URL": database_url,
                "NEWSLETTER_SECRET_KEY": SECRET,
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.events.append({**event, "seen": time.monotonic()})
                self._cond.notify_all()

    def wait(self, event: str, timeout: float = 20, **fields) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for found in self.events:
                    if found["event"] == event and all(
                        found.get(k) == v for k, v in fields.items()
                    ):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no {event} {fields} in {self.events}")
                self._cond.wait(left)

    def saw(self, event: str) -> bool:
        with self._cond:
            return any(e["event"] == event for e in self.events)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def test_a_schedule_made_elsewhere_fires_on_time_and_once(sending):
    sending.add(3)
    daemon = DaemonProcess(sending.sample, str(sending.engine.url.render_as_string(False)))
    try:
        daemon.wait("active")
        book = ScheduleBook(sending.workspace, sending.engine)
        record = book.schedule_issue(ISSUE, at(3))
        fired = daemon.wait("fired", schedule=record.id)
        late = datetime.now(UTC) - record.due_at
        assert late < timedelta(seconds=5), late
        daemon.wait("done", send=fired["send"])
        assert len(list((sending.outbox / f"send-{fired['send']}").glob("*.eml"))) == 3
        assert book.get(record.id).state == "fired"
    finally:
        assert daemon.stop() == 0
    assert len(Ledger(sending.engine).list()) == 1


def test_moved_and_cancelled_before_due(sending):
    sending.add(1)
    daemon = DaemonProcess(sending.sample, str(sending.engine.url.render_as_string(False)))
    try:
        daemon.wait("active")
        book = ScheduleBook(sending.workspace, sending.engine)
        moved = book.schedule_issue(ISSUE, at(4))
        cancelled = book.schedule_issue("2027-01-evidence", at(4))
        daemon.wait("picked up", schedule=cancelled.id)
        new_due = book.schedule_issue(ISSUE, at(8), replace=True).due_at
        book.cancel(str(cancelled.id))
        daemon.wait("dropped", schedule=cancelled.id)
        daemon.wait("moved", schedule=moved.id)
        daemon.wait("fired", schedule=moved.id, timeout=20)
        fired_at = datetime.now(UTC)
        assert new_due - timedelta(seconds=1) <= fired_at <= new_due + timedelta(seconds=5)
        time.sleep(1)
    finally:
        assert daemon.stop() == 0
    [send] = Ledger(sending.engine).list()
    assert send.issue_slug == ISSUE
    assert book.get(cancelled.id).state == "cancelled"


def test_one_active_daemon_and_a_standby_that_takes_over(sending):
    sending.add(2)
    url = str(sending.engine.url.render_as_string(False))
    first = DaemonProcess(sending.sample, url)
    first.wait("active")
    second = DaemonProcess(sending.sample, url)
    try:
        second.wait("standby")
        book = ScheduleBook(sending.workspace, sending.engine)
        record = book.schedule_issue(ISSUE, at(2))
        first.wait("done")
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        took = second.wait("took over", timeout=15)
        assert took["seen"] - killed < 10
        again = book.schedule_issue("2027-01-evidence", at(2))
        second.wait("done", issue="2027-01-evidence")
    finally:
        first.stop(signal.SIGKILL)
        assert second.stop() == 0
    sends = Ledger(sending.engine).list()
    assert sorted(s.issue_slug for s in sends) == ["2026-12-welcome", "2027-01-evidence"]
    assert book.get(record.id).send_id and book.get(again.id).send_id


@pytest.fixture
def smtp_env(monkeypatch):
    with SmtpServer(delay=0.02) as server:
        yield (
            server,
            {
                "NEWSLETTER_SMTP__HOST": server.host,
                "NEWSLETTER_SMTP__PORT": str(server.port),
                "NEWSLETTER_SMTP__SECURITY": "none",
            },
        )


def _many(sending, count: int) -> None:
    for i in range(count):
        sending.store.add(f"reader{i}@example.com", context=Context(Source.CLI))


def test_a_daemon_killed_mid_send_finishes_it_after_a_restart(sending, smtp_env):
    server, env = smtp_env
    _many(sending, 300)
    url = str(sending.engine.url.render_as_string(False))
    daemon = DaemonProcess(sending.sample, url, **env)
    daemon.wait("active")
    book = ScheduleBook(sending.workspace, sending.engine)
    record = book.schedule_issue(ISSUE, at(1), transport="smtp")
    daemon.wait("sending")
    server.wait_for(60, timeout=30)
    daemon.stop(signal.SIGKILL)
    restarted = DaemonProcess(sending.sample, url, **env)
    try:
        restarted.wait("resumed")
        restarted.wait("done", timeout=60)
    finally:
        assert restarted.stop() == 0
    final = Ledger(sending.engine).get(book.get(record.id).send_id)
    received = server.by_recipient()
    uncertain = final.counts["uncertain"]
    assert final.counts["sent"] + uncertain == 300 and uncertain <= 4
    assert sum(received.values()) <= 300 and len(received) >= 300 - uncertain
    assert all(n == 1 for n in received.values())


def test_sigterm_stops_the_daemon_and_its_send_cleanly(sending, smtp_env):
    server, env = smtp_env
    _many(sending, 300)
    url = str(sending.engine.url.render_as_string(False))
    daemon = DaemonProcess(sending.sample, url, **env)
    daemon.wait("active")
    record = ScheduleBook(sending.workspace, sending.engine).schedule_issue(
        ISSUE, at(1), transport="smtp"
    )
    daemon.wait("sending")
    server.wait_for(40, timeout=30)
    asked = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - asked < 15
    daemon.wait("stopped")
    send = Ledger(sending.engine).list()[0]
    assert send.counts["uncertain"] == 0 and send.counts["claimed"] == 0
    assert send.counts["sent"] == len(server.messages) < 300
    assert record.id
