"""The SendGrid transport through the whole send, into the local SendGrid stand-in, with the
real `sendgrid` client; the stand-in checks every request as SendGrid would."""

from __future__ import annotations

import html

import pytest
from conftest import SECRET
from sendgrid_standin import SendGridStandIn

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.personalize import Recipient, personalize
from newsletter.domain.tokens import Purpose, Signer

ISSUE = "2026-12-welcome"
KEY = "SG.test-key"


@pytest.fixture
def standin(sending, monkeypatch):
    with SendGridStandIn(api_key=KEY) as server:
        monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", server.url)
        monkeypatch.setenv("SENDGRID_API_KEY", KEY)
        yield server


def run(sending, **options):
    return sending.run("sendgrid", **{**dict(batch_size=1000, concurrency=1), **options})


def test_personalizations_with_substitutions_headers_and_custom_args(sending, standin):
    ids = sending.add(7)
    ledger, final = run(sending)
    assert final.status == SendStatus.DONE and final.counts["sent"] == 7
    assert standin.accepted_count == 1 and standin.rejected == []
    body = standin.accepted[0]
    assert [p["to"][0]["email"] for p in body["personalizations"]] == [
        f"reader{i}@example.com" for i in range(7)
    ]
    first = body["personalizations"][0]
    assert first["custom_args"] == {
        "stream": f"send-{final.id}",
        "delivery": f"sub-{ids[0]}",
        "subscriber_id": str(ids[0]),
    }
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Id" in body["headers"]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["newsletter"]
    # What SendGrid makes of it is what our own substitution makes of it.
    text = body["content"][0]["value"]
    for key, value in first["substitutions"].items():
        text = text.replace(key, value)
    url = first["headers"]["List-Unsubscribe"].split(">")[0].strip("<")
    token = url.rsplit("/", 1)[1]
    assert Signer([SECRET]).verify(token, Purpose.UNSUBSCRIBE).subscriber_id == ids[0]
    expected = personalize(
        ledger.rendered(final.id),
        Recipient(
            "reader0@example.com",
            "Reader0",
            unsubscribe_url=url,
            preferences_url=next(
                v
                for v in first["substitutions"].values()
                if "/preferences/" in v and "&amp;" not in v
            ),
        ),
    )
    assert text == expected.text
    assert html.escape(url) in body["content"][1]["value"].replace(
        next(k for k, v in first["substitutions"].items() if v == html.escape(url)),
        html.escape(url),
    )


def test_more_than_a_thousand_recipients_go_in_several_requests(sending, standin):
    sending.add(1203)
    _, final = run(sending, batch_size=1000)
    assert final.counts["sent"] == 1203
    assert standin.accepted_count == 2
    assert sorted(standin.recipients()) == sorted(f"reader{i}@example.com" for i in range(1203))


def test_rate_limit_and_server_errors_are_retried(sending, standin):
    sending.add(5)
    standin.fail_next(429)
    standin.fail_next(500)
    _ledger, final = run(sending)
    assert final.counts["sent"] == 5
    assert standin.accepted_count == 1
    assert sorted(standin.recipients()) == [f"reader{i}@example.com" for i in range(5)]


def test_bad_request_fails_the_batch_with_sendgrids_reason(sending, standin):
    sending.add(2)
    # The whole request fails, then each half: every recipient ends failed, with the reason.
    standin.fail_next(
        400, count=3, body={"errors": [{"message": "bad thing", "field": "from", "help": None}]}
    )
    ledger, final = run(sending)
    assert final.counts["failed"] == 2
    [(_, _, error), _] = ledger.deliveries_in(final.id, DeliveryStatus.FAILED)
    assert error == "SendGrid 400: from: bad thing"


def test_wrong_key_pauses_the_send(sending, standin, monkeypatch):
    sending.add(2)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
    _, final = run(sending)
    assert final.status == SendStatus.PAUSED and "401" in final.status_reason
    assert final.counts["queued"] == 2 and standin.accepted_count == 0


def test_payload_too_large_splits_the_batch(sending, monkeypatch):
    sending.add(40)
    with SendGridStandIn(api_key=KEY, max_request_bytes=60_000) as server:
        monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", server.url)
        monkeypatch.setenv("SENDGRID_API_KEY", KEY)
        _, final = run(sending)
        assert final.counts["sent"] == 40
        assert server.accepted_count > 1
        assert sorted(server.recipients()) == sorted(f"reader{i}@example.com" for i in range(40))


def test_a_timeout_is_uncertain_not_resent(sending, standin, monkeypatch):
    sending.add(3)
    monkeypatch.setenv("NEWSLETTER_SENDGRID__TIMEOUT", "0.3")
    standin.delay_next(1.0)
    ledger, final = run(sending)
    assert final.counts["uncertain"] == 3
    assert len(ledger.deliveries_in(final.id, DeliveryStatus.UNCERTAIN)) == 3


def test_sandbox_and_asm_group_settings(sending, standin, monkeypatch):
    sending.add(1)
    monkeypatch.setenv("NEWSLETTER_SENDGRID__SANDBOX", "true")
    monkeypatch.setenv("NEWSLETTER_SENDGRID__ASM_GROUP_ID", "42")
    _, final = run(sending)
    assert final.counts["sent"] == 1
    body = standin.sandboxed[0]
    assert body["mail_settings"]["sandbox_mode"]["enable"] is True
    assert body["asm"] == {"group_id": 42}


def test_one_bad_personalization_fails_alone(sending, standin):
    sending.add(4)
    standin.fail_next(400, count=2, body={"errors": [{"message": "bad", "field": "x"}]})
    # 4 -> 400; halves [0, 1] -> 400, [2, 3] -> 202; then [0] and [1] -> 202.
    _, final = run(sending)
    assert final.counts["sent"] == 4


def test_names_that_need_escaping_arrive_intact(sending, standin):
    """The request body is JSON written as text: quotes, backslashes, non-ASCII and HTML
    specials must reach SendGrid exactly, each in the form its content needs."""
    from newsletter.domain.subscriber import Source
    from newsletter.services.subscribers import Context

    names = ['Zoë "Z" O\'Brien', "Back\\slash <b>&</b>", "Łukasz 🙂", "Ann; Lee, PhD"]
    for i, name in enumerate(names):
        sending.store.add(f"odd{i}@example.com", name=name, context=Context(Source.CLI))
    _, final = run(sending)
    assert final.counts["sent"] == len(names) and standin.rejected == []
    [body] = standin.accepted
    people = body["personalizations"]
    assert [p["to"][0]["name"] for p in people] == [*names[:3], "Ann  Lee  PhD"]
    html_part, text_part = body["content"][1]["value"], body["content"][0]["value"]
    for person, name in zip(people, names, strict=True):
        first = name.split()[0]
        in_text = {k for k in person["substitutions"] if k in text_part}
        in_html = {k for k in person["substitutions"] if k in html_part}
        assert first in {person["substitutions"][k] for k in in_text}
        assert html.escape(first) in {person["substitutions"][k] for k in in_html}
