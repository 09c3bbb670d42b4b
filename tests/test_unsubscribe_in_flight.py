"""An unsubscribe (or bounce, erasure, pause) that commits while its batch is already
claimed is honoured within a second: over SMTP per message, over SendGrid just before the
request."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import SECRET
from sendgrid_standin import SendGridStandIn
from smtp_server import SmtpServer

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.subscriber import Source
from newsletter.domain.tokens import Signer
from newsletter.infra.transports.factory import make_transport
from newsletter.infra.transports.sendgrid import SendgridTransport
from newsletter.infra.workspace import open_workspace
from newsletter.services.dispatch import Dispatcher, SendOptions
from newsletter.services.ledger import Ledger
from newsletter.services.links import list_identity
from newsletter.services.sending import create_send, plan_send
from newsletter.services.subscribers import Context

ISSUE = "2026-12-welcome"


def dispatcher_for(sending, transport, **options):
    workspace = open_workspace(sending.sample.root)
    return Dispatcher(
        Ledger(sending.engine),
        transport,
        list_identity(workspace.settings),
        Signer([SECRET]),
        SendOptions(**options),
    )


def start(sending):
    plan = plan_send(sending.workspace, sending.engine, ISSUE)
    return create_send(Ledger(sending.engine), plan)


def test_smtp_never_hands_over_a_message_a_second_after_its_unsubscribe(sending, monkeypatch):
    """One claimed batch of 120 going out at 25 ms a message; subscribers further down the
    batch unsubscribe at known moments."""
    ids = sending.add(120)
    # (message count that triggers it, position in the batch of who unsubscribes)
    plan = [(3, 60), (10, 12), (20, 80), (40, 41), (50, 110)]
    committed: dict[int, float] = {}
    with SmtpServer(delay=0.025) as server:
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", server.host)
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(server.port))
        monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")
        transport = make_transport(open_workspace(sending.sample.root), "smtp")
        record = start(sending)

        def unsubscribe_as_it_goes() -> None:
            for count, position in plan:
                server.wait_for(count, timeout=30)
                sending.store.unsubscribe(ids[position], Context(Source.ONE_CLICK))
                committed[ids[position]] = time.monotonic()

        watcher = threading.Thread(target=unsubscribe_as_it_goes)
        watcher.start()
        final = dispatcher_for(sending, transport, batch_size=120).run(record.id)
        watcher.join()
        arrived = {m.rcpt_tos[0]: m.mail_at for m in server.messages}
    assert final.status == SendStatus.DONE
    for subscriber_id, at in committed.items():
        address = f"reader{subscriber_id - 1}@example.com"
        if address in arrived:  # allowed only if its turn came within a second
            assert arrived[address] - at < 1.0, (address, arrived[address] - at)
    # Those whose turn was well over a second away were certainly not sent to.
    for _, position in (plan[0], plan[2], plan[4]):
        assert f"reader{position}@example.com" not in arrived
    skipped = Ledger(sending.engine).deliveries_in(record.id, DeliveryStatus.SKIPPED)
    assert {i for i, _, _ in skipped} >= {ids[p] for _, p in (plan[0], plan[2], plan[4])}
    assert all("unsubscribed" in reason for _, _, reason in skipped)


class _SlowToStart(SendgridTransport):
    """The real transport, started late: between the claim and the request, someone
    unsubscribes (the moment a slow TLS handshake or a busy thread would give them)."""

    def __init__(self, *args, before, **kwargs):
        super().__init__(*args, **kwargs)
        self.before = before

    def send(self, rendered, recipients, **kwargs):
        self.before()
        time.sleep(0.6)  # past the watch's half second: the next pull reads again
        yield from super().send(rendered, recipients, **kwargs)


@pytest.mark.parametrize("change", ["unsubscribe", "erase", "pause"])
def test_sendgrid_rechecks_the_batch_just_before_the_request(sending, monkeypatch, change):
    ids = sending.add(8)
    with SendGridStandIn(api_key="SG.test-key") as standin:
        workspace = open_workspace(sending.sample.root)
        workspace.settings.sendgrid.host = standin.url

        def leave() -> None:
            context = Context(Source.ONE_CLICK)
            if change == "unsubscribe":
                sending.store.unsubscribe(ids[3], context)
            elif change == "erase":
                sending.store.erase("reader3@example.com", context)
            else:
                from datetime import UTC, datetime, timedelta

                sending.store.update_preferences(
                    ids[3], paused_until=datetime.now(UTC) + timedelta(days=30), context=context
                )

        from newsletter.infra.transports.factory import sender_of

        transport = _SlowToStart(
            workspace.settings.sendgrid, sender_of(workspace), "SG.test-key", before=leave
        )
        record = start(sending)
        final = dispatcher_for(sending, transport, batch_size=1000).run(record.id)
        [body] = standin.accepted
    sent_to = [p["to"][0]["email"] for p in body["personalizations"]]
    assert len(sent_to) == 7 and "reader3@example.com" not in sent_to
    assert final.counts["sent"] == 7 and final.counts["skipped"] == 1
