"""SendGrid's signed Event Webhook: the signature (published vector, a one-byte change,
missing and stale headers), each event's effect on the list, duplicates, unknown
subscribers, and a bounce keeping the next send from that address."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest
from conftest import EventSigner, running

from newsletter.domain.subscriber import Source, Status
from newsletter.services.feedback import BadSignature, WebhookVerifier
from newsletter.services.subscribers import Context
from newsletter.web.server import build_app

VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
    "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
VECTOR_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAb"
    "PIqHh89M15TluLtEZtM="
)
VECTOR_BODY = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
    b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
    b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",'
    b'"smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)


def test_the_published_vector_verifies_and_a_one_byte_change_does_not():
    verifier = WebhookVerifier(VECTOR_KEY, timedelta(days=365 * 100))
    verifier.verify(VECTOR_BODY, VECTOR_SIGNATURE, "1600112502")
    changed = VECTOR_BODY.replace(b"Bounced", b"Bounceb")
    with pytest.raises(BadSignature):
        verifier.verify(changed, VECTOR_SIGNATURE, "1600112502")
    with pytest.raises(BadSignature):
        verifier.verify(VECTOR_BODY, VECTOR_SIGNATURE, "1600112503")
    with pytest.raises(BadSignature, match="outside the allowed age"):
        WebhookVerifier(VECTOR_KEY, timedelta(minutes=10)).verify(
            VECTOR_BODY, VECTOR_SIGNATURE, "1600112502"
        )


@pytest.fixture
def hook(web, monkeypatch):
    provider = EventSigner()
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", provider.public)
    with running(build_app(web.workspace, web.engine, web.signer)) as url:

        def post(events, *, headers=None, raw=None):
            body = raw if raw is not None else json.dumps(events).encode()
            return httpx.post(
                f"{url}/webhooks/sendgrid",
                content=body,
                headers=provider.headers(body) if headers is None else headers,
            )

        post.provider = provider  # type: ignore[attr-defined]
        yield post


def person(web, address: str) -> int:
    return web.store.add(address, context=Context(Source.CLI)).id


def event(kind: str, sid: int | None, email: str, n: int, **extra) -> dict:
    found = {"event": kind, "email": email, "sg_event_id": f"evt-{kind}-{n}", "timestamp": 1}
    if sid is not None:
        found.update(subscriber_id=str(sid), stream="send-1", delivery=f"sub-{sid}")
    return {**found, **extra}


def test_each_event_type_has_its_effect(web, hook):
    cases = [
        ("bounce", {"type": "bounce"}, Status.BOUNCED),
        ("bounce", {"type": "blocked"}, Status.ACTIVE),
        ("deferred", {}, Status.ACTIVE),
        ("dropped", {"reason": "Bounced Address"}, Status.BOUNCED),
        ("dropped", {"reason": "Unsubscribed Address"}, Status.UNSUBSCRIBED),
        ("dropped", {"reason": "Spam Reporting Address"}, Status.COMPLAINED),
        ("spamreport", {}, Status.COMPLAINED),
        ("unsubscribe", {}, Status.UNSUBSCRIBED),
        ("group_unsubscribe", {"asm_group_id": 1}, Status.UNSUBSCRIBED),
        ("group_resubscribe", {"asm_group_id": 1}, Status.ACTIVE),
        ("processed", {}, Status.ACTIVE),
        ("delivered", {}, Status.ACTIVE),
        ("open", {"sg_machine_open": True}, Status.ACTIVE),
        ("click", {"url": "https://example.org/x"}, Status.ACTIVE),
    ]
    events = []
    for n, (kind, extra, _) in enumerate(cases):
        address = f"p{n}@example.com"
        # Half are mapped by our custom args, half by address alone.
        sid = person(web, address)
        events.append(event(kind, sid if n % 2 else None, address, n, **extra))
    answer = hook(events)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == len(cases)
    for n, (kind, _, expected) in enumerate(cases):
        assert web.store.get(f"p{n}@example.com").status == expected, kind
    log = web.store.events(web.store.get("p6@example.com").id)[-1]
    assert log.source == "provider-event" and "evt-spamreport-6" in (log.detail or "")


def test_a_retried_post_changes_nothing_and_strangers_are_harmless(web, hook):
    sid = person(web, "ann@example.com")
    posted = [event("bounce", sid, "ann@example.com", 1, type="bounce")]
    posted.append(event("unsubscribe", None, "nobody@example.com", 2))
    assert hook(posted).json() == {"received": 2, "stored": 2, "changes": 1}
    assert hook(posted).json() == {"received": 2, "stored": 0, "changes": 0}
    # Out of order: an unsubscribe after the bounce never makes a bounce weaker.
    late = [event("unsubscribe", sid, "ann@example.com", 3)]
    assert hook(late).json()["changes"] == 0
    assert web.store.get("ann@example.com").status == Status.BOUNCED


def test_bad_or_missing_signatures_and_stale_posts_change_nothing(web, hook):
    sid = person(web, "bob@example.com")
    body = json.dumps([event("spamreport", sid, "bob@example.com", 1)]).encode()
    signed = hook.provider.headers(body)  # type: ignore[attr-defined]
    tampered = body.replace(b"spamreport", b"spamrepors")
    stale = hook.provider.headers(body, at=int(time.time()) - 3600)  # type: ignore[attr-defined]
    for headers, raw in (({}, body), (signed, tampered), (stale, body)):
        assert hook(None, headers=headers, raw=raw).status_code == 403
    assert web.store.get("bob@example.com").status == Status.ACTIVE
    assert hook(None, raw=b'{"not": "a list"}').status_code == 400


def test_a_bounce_keeps_the_next_send_from_the_address(web, hook):
    from newsletter.services.audience import Audience

    kept = person(web, "kept@example.com")
    gone = person(web, "gone@example.com")
    before = Audience().count(web.engine)
    hook([event("bounce", gone, "gone@example.com", 1, type="bounce")])
    assert Audience().count(web.engine) == before - 1
    assert web.store.get_by_id(kept).status == Status.ACTIVE
