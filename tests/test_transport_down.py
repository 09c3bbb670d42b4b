"""A transport that is down or refuses us: found before a send exists (exit 69, no send),
shown while a send waits for it, and a pause with the reason when it stays down."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from sendgrid_standin import SendGridStandIn
from smtp_server import SmtpServer

from newsletter.errors import ExitStatus
from newsletter.services.ledger import Ledger

ISSUE = "2026-12-welcome"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_env(monkeypatch):
    def point_at(port: int) -> None:
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(port))
        monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")

    return point_at


def test_a_send_to_a_down_smtp_server_is_not_created(sending, cli, smtp_env):
    sending.add(3)
    port = closed_port()
    smtp_env(port)
    result = cli("send", ISSUE, "--yes", "--transport", "smtp")
    assert result.code == ExitStatus.UNAVAILABLE
    assert f"127.0.0.1:{port}" in result.err and "refused" in result.err.lower()
    assert Ledger(sending.engine).list() == []


def test_a_refused_smtp_login_is_found_before_the_send(sending, cli, smtp_env, monkeypatch):
    sending.add(1)
    with SmtpServer(username="news", password="right") as server:
        smtp_env(server.port)
        monkeypatch.setenv("NEWSLETTER_SMTP__USERNAME", "news")
        monkeypatch.setenv("NEWSLETTER_SMTP__PASSWORD", "wrong")
        result = cli("send", ISSUE, "--yes", "--transport", "smtp")
        test = cli("send", ISSUE, "--to", "me@example.com", "--transport", "smtp", "--json")
    assert result.code == ExitStatus.UNAVAILABLE and "login refused: 535" in result.err
    assert "wrong" not in result.err
    assert Ledger(sending.engine).list() == []
    assert test.code == ExitStatus.UNAVAILABLE and "535" in test.err
    report = json.loads(test.out)
    assert report["ok"] is False and report["exit_status"] == 69
    assert "535" in report["error"]["message"]


def test_a_test_send_to_a_down_server_exits_69_with_json(sending, cli, smtp_env):
    smtp_env(closed_port())
    result = cli("send", ISSUE, "--to", "me@example.com", "--transport", "smtp", "--json")
    assert result.code == ExitStatus.UNAVAILABLE
    assert json.loads(result.out)["exit_status"] == 69


def test_sendgrid_key_refused_on_a_test_send_and_before_a_send(sending, cli, monkeypatch):
    sending.add(1)
    with SendGridStandIn(api_key="SG.right") as standin:
        monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", standin.url)
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
        test = cli("send", ISSUE, "--to", "me@example.com", "--transport", "sendgrid", "--json")
        real = cli("send", ISSUE, "--yes", "--transport", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.right")
        standin.scopes = ["scopes.read"]
        scoped = cli("send", ISSUE, "--yes", "--transport", "sendgrid")
        assert standin.accepted_count == 0
    assert test.code == ExitStatus.UNAVAILABLE and "401" in json.loads(test.out)["error"]["message"]
    assert real.code == ExitStatus.UNAVAILABLE and "refused the API key" in real.err
    assert "SG.wrong" not in real.err + test.out + test.err
    assert scoped.code == ExitStatus.UNAVAILABLE and "mail.send" in scoped.err
    assert Ledger(sending.engine).list() == []


def test_a_server_that_goes_down_mid_send_pauses_with_the_reason(
    sending, cli, smtp_env, monkeypatch
):
    sending.add(40)
    monkeypatch.setenv("NEWSLETTER_SENDING__RETRY_BASE_SECONDS", "0.05")
    monkeypatch.setenv("NEWSLETTER_SENDING__PAUSE_AFTER_UNREACHABLE", "2")
    server = SmtpServer(delay=0.02).__enter__()
    smtp_env(server.port)

    def take_it_down() -> None:
        server.wait_for(10, timeout=30)
        server.__exit__(None, None, None)

    killer = threading.Thread(target=take_it_down)
    killer.start()
    result = cli(
        "send", ISSUE, "--yes", "--transport", "smtp", "--batch-size", "5", "--concurrency", "1"
    )
    killer.join()
    assert result.code == ExitStatus.SEND_INCOMPLETE, result.err
    assert "retrying in" in result.err
    assert f"paused: cannot connect to SMTP server 127.0.0.1:{server.port}" in result.err
    [record] = Ledger(sending.engine).list()
    assert record.status == "paused" and "cannot connect" in (record.status_reason or "")
    assert record.counts["uncertain"] <= 1 and record.counts["queued"] >= 25
    shown = cli("sends", "show", str(record.id))
    assert "retrying:" in shown.out and "cannot connect" in shown.out
