"""The SMTP transport through the whole send, against a real SMTP server on loopback."""

from __future__ import annotations

import email
import email.policy

import pytest
from smtp_server import SmtpServer

from newsletter.domain.delivery import DeliveryStatus, SendStatus

ISSUE = "2026-12-welcome"


@pytest.fixture
def smtp(sending, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", server.host)
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(server.port))
        monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")
        yield server


def run(sending, **options):
    return sending.run("smtp", **{**dict(batch_size=5, concurrency=2), **options})


def test_each_subscriber_once_over_reused_connections(sending, smtp):
    sending.add(23)
    _, final = run(sending)
    assert final.status == SendStatus.DONE, final
    assert final.counts["sent"] == 23, final
    assert sorted(smtp.by_recipient().values()) == [1] * 23
    assert smtp.connections <= 2  # a pool, not a connection per message
    message = email.message_from_bytes(smtp.messages[0].data, policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["To"].addresses[0].addr_spec == smtp.messages[0].rcpt_tos[0]
    assert "Unsubscribe" in message.get_body(("plain",)).get_content()


def test_permanent_refusal_fails_that_recipient_only(sending, smtp):
    sending.add(6)
    smtp.reject("reader2@example.com", 550, "5.1.1 No such user")
    ledger, final = run(sending)
    assert final.counts["sent"] == 5 and final.counts["failed"] == 1
    [(_, address, error)] = ledger.deliveries_in(final.id, DeliveryStatus.FAILED)
    assert address == "reader2@example.com" and error.startswith("550 5.1.1")


def test_transient_refusals_are_retried_with_backoff(sending, smtp):
    sending.add(4)
    smtp.tempfail("reader1@example.com", times=2)
    smtp.fail_data(451, times=1)
    _, final = run(sending)
    assert final.counts["sent"] == 4
    assert sorted(smtp.by_recipient().values()) == [1] * 4


def test_a_dropped_connection_resends_only_what_was_not_accepted(sending, smtp):
    sending.add(10)
    smtp.drop_connection_after(3)
    _, final = run(sending, concurrency=1)
    assert final.counts["sent"] == 10 and final.counts["uncertain"] == 0
    assert sorted(smtp.by_recipient().values()) == [1] * 10


def test_too_many_failures_in_a_row_pause_the_send(sending, smtp):
    sending.add(12)
    for i in range(12):
        smtp.tempfail(f"reader{i}@example.com", times=100)
    _, final = run(sending, max_consecutive_failures=6, concurrency=1)
    assert final.status == SendStatus.PAUSED
    assert "failures in a row" in final.status_reason
    assert smtp.by_recipient() == {}


def test_internationalized_address(sending, smtp):
    from newsletter.domain.subscriber import Source
    from newsletter.services.subscribers import Context

    sending.store.add("José@bücher.example", context=Context(Source.CLI))
    _, final = run(sending)
    assert final.counts["sent"] == 1
    assert smtp.messages[0].rcpt_tos == ["José@bücher.example"]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login(sending, monkeypatch, security):
    sending.add(3)
    with SmtpServer(tls=security, username="sender", password="s3cret") as server:
        for key, value in {
            "HOST": "localhost",
            "PORT": str(server.port),
            "SECURITY": security,
            "USERNAME": "sender",
            "PASSWORD": "s3cret",
            "CAFILE": str(server.cafile),
        }.items():
            monkeypatch.setenv(f"NEWSLETTER_SMTP__{key}", value)
        _, final = run(sending)
        assert final.counts["sent"] == 3 and len(server.messages) == 3


def test_refused_login_pauses_and_sends_nothing(sending, monkeypatch):
    sending.add(3)
    with SmtpServer(username="sender", password="right") as server:
        for key, value in {
            "HOST": server.host,
            "PORT": str(server.port),
            "SECURITY": "none",
            "USERNAME": "sender",
            "PASSWORD": "wrong",
        }.items():
            monkeypatch.setenv(f"NEWSLETTER_SMTP__{key}", value)
        _ledger, final = run(sending)
        assert final.status == SendStatus.PAUSED and "login refused" in final.status_reason
        assert final.counts["queued"] == 3 and server.messages == []
