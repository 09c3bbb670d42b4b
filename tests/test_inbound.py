"""`newsletter inbound`: delivery status notifications (Postfix, Exchange and Gmail shapes,
RFC 3464), an ARF abuse report (RFC 5965), a mailto unsubscribe, and mail that is none of
those. Fixtures are written for these tests after the RFCs' examples."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from conftest import running

from newsletter.domain.subscriber import Source, Status
from newsletter.domain.tokens import Purpose, Signer
from newsletter.infra.workspace import open_workspace
from newsletter.services.subscribers import Context
from newsletter.web.server import build_app

SECRET = "test-signing-key-0123456789abcdef"

POSTFIX = """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: news@follicle-notes.example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <20261202.ABC@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Wed, 2 Dec 2026 10:00:00 +0000

Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected

--B1
Content-Type: text/rfc822-headers

Message-ID: <send-1.sub-{sid}@follicle-notes.example.com>
To: {address}
Subject: Microneedling

--B1--
"""

EXCHANGE_DELAYED = """\
From: postmaster@corp.example.org
To: news@follicle-notes.example.com
Subject: Delivery delayed: Microneedling
Message-ID: <delay-1@corp.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B2"

--B2
Content-Type: text/plain

Delivery is delayed to these recipients or groups.

--B2
Content-Type: message/delivery-status

Reporting-MTA: dns;corp.example.org

Final-Recipient: rfc822;{address}
Action: delayed
Status: 4.4.7

--B2--
"""

ARF = """\
From: staff@isp.example
To: abuse@follicle-notes.example.com
Subject: FW: Microneedling
Message-ID: <arf-1@isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B3"

--B3
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--B3
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1

--B3
Content-Type: message/rfc822

From: news@follicle-notes.example.com
To: {address}
Message-ID: <send-1.sub-{sid}@follicle-notes.example.com>
Subject: Microneedling

Body.
--B3--
"""

MAILTO = """\
From: {address}
To: unsubscribe@follicle-notes.example.com
Subject: unsubscribe-{token}
Message-ID: <u-1@mail.example>

"""

OTHER = """\
From: reader@example.com
To: editors@follicle-notes.example.com
Subject: Thanks for the last issue
Message-ID: <thanks-1@example.com>

Loved it.
"""


def feed(cli, monkeypatch, text: str):
    stdin = io.TextIOWrapper(io.BytesIO(text.replace("\n", "\r\n").encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    return cli("inbound", "--json")


def person(sending, address: str) -> int:
    return sending.store.add(address, context=Context(Source.CLI)).id


def test_a_permanent_bounce_marks_the_subscriber_bounced_once(sending, cli, monkeypatch):
    sid = person(sending, "gone@example.net")
    result = feed(cli, monkeypatch, POSTFIX.format(address="gone@example.net", sid=sid))
    assert result.code == 0, result.err
    [applied] = json.loads(result.out)
    assert applied["kind"] == "bounce" and applied["changed"] is True
    assert sending.store.get("gone@example.net").status == Status.BOUNCED
    again = json.loads(
        feed(cli, monkeypatch, POSTFIX.format(address="gone@example.net", sid=sid)).out
    )
    assert again[0]["duplicate"] is True


def test_a_delay_is_counted_not_a_bounce(sending, cli, monkeypatch):
    person(sending, "slow@corp.example.org")
    result = feed(cli, monkeypatch, EXCHANGE_DELAYED.format(address="slow@corp.example.org"))
    assert json.loads(result.out)[0]["kind"] == "soft-bounce"
    assert sending.store.get("slow@corp.example.org").status == Status.ACTIVE


def test_an_abuse_report_marks_the_subscriber_complained(sending, cli, monkeypatch):
    sid = person(sending, "angry@isp.example")
    result = feed(cli, monkeypatch, ARF.format(address="angry@isp.example", sid=sid))
    assert json.loads(result.out)[0]["kind"] == "complaint"
    assert sending.store.get("angry@isp.example").status == Status.COMPLAINED


def test_a_mailto_unsubscribe_needs_a_valid_token(sending, cli, monkeypatch):
    sid = person(sending, "leaving@mail.example")
    other = person(sending, "victim@mail.example")
    forged = Signer(["someone-elses-key-0123456789"]).sign(Purpose.UNSUBSCRIBE, other)
    text = MAILTO.format(address="x@mail.example", token=forged)
    assert json.loads(feed(cli, monkeypatch, text).out)[0]["subscriber_id"] is None
    assert sending.store.get("victim@mail.example").status == Status.ACTIVE
    token = Signer([SECRET]).sign(Purpose.UNSUBSCRIBE, sid, 1)
    text = MAILTO.format(address="leaving@mail.example", token=token).replace("u-1@", "u-2@")
    assert json.loads(feed(cli, monkeypatch, text).out)[0]["changed"] is True
    assert sending.store.get("leaving@mail.example").status == Status.UNSUBSCRIBED
    log = sending.store.events(sid)[-1]
    assert log.source == "mailto"


def test_other_mail_is_ignored_with_exit_0(sending, cli, monkeypatch):
    result = feed(cli, monkeypatch, OTHER)
    assert result.code == 0
    assert json.loads(result.out)[0]["kind"] == "other"


def test_verp_names_the_delivery_a_bounce_is_about(sending, cli, monkeypatch):
    from smtp_server import SmtpServer

    sid = person(sending, "forwarded@example.net")
    with SmtpServer() as server:
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", server.host)
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(server.port))
        monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")
        monkeypatch.setenv("NEWSLETTER_SMTP__BOUNCE_DOMAIN", "bounces.follicle-notes.example.com")
        assert cli("send", "2026-12-welcome", "--yes", "--transport", "smtp").code == 0
        [message] = server.messages
    envelope = message.mail_from
    assert envelope.startswith("bounces+")
    assert envelope.endswith("@bounces.follicle-notes.example.com")
    # The bounce comes from where the mail was forwarded: the address means nothing to us,
    # and the original is not attached. The envelope it was sent back to is enough.
    dsn = EXCHANGE_DELAYED.replace("Status: 4.4.7", "Status: 5.1.1").replace(
        "Action: delayed", "Action: failed"
    )
    dsn = dsn.format(address="someone-else@forward.example").replace(
        "To: news@follicle-notes.example.com", f"To: {envelope}"
    )
    result = json.loads(feed(cli, monkeypatch, dsn).out)
    assert result[0]["kind"] == "bounce" and result[0]["subscriber_id"] == sid
    assert sending.store.get("forwarded@example.net").status == Status.BOUNCED


def delayed(address: str, sid: int, send_id: int) -> str:
    """A transient failure whose returned headers name the send (our Message-ID)."""
    return (
        EXCHANGE_DELAYED.format(address=address).replace(
            "<delay-1@corp.example.org>", f"<delay-{send_id}@corp.example.org>"
        )
        + f"--B2\nContent-Type: text/rfc822-headers\n\n"
        f"Message-ID: <send-{send_id}.sub-{sid}@follicle-notes.example.com>\n\n--B2--\n"
    ).replace("--B2--\n--B2\n", "--B2\n", 1)


def test_soft_bounces_on_consecutive_sends_make_the_address_bounced(sending, cli, monkeypatch):
    sid = person(sending, "full@corp.example.org")
    monkeypatch.setenv("NEWSLETTER_FEEDBACK__SOFT_BOUNCE_LIMIT", "3")
    sends = [sending.run("outbox")[1].id for _ in range(3)]
    for number, send_id in enumerate(sends, 1):
        [applied] = json.loads(
            feed(cli, monkeypatch, delayed("full@corp.example.org", sid, send_id)).out
        )
        assert applied["kind"] == "soft-bounce"
        expected = Status.BOUNCED if number == 3 else Status.ACTIVE
        assert sending.store.get("full@corp.example.org").status == expected, number
    log = sending.store.events(sid)[-1]
    assert log.source == "provider-event" and "3 soft bounces in a row" in (log.detail or "")


def test_a_send_that_got_through_breaks_the_row_of_soft_bounces(sending, cli, monkeypatch):
    sid = person(sending, "flaky@corp.example.org")
    monkeypatch.setenv("NEWSLETTER_FEEDBACK__SOFT_BOUNCE_LIMIT", "2")
    first, second, third = (sending.run("outbox")[1].id for _ in range(3))
    feed(cli, monkeypatch, delayed("flaky@corp.example.org", sid, first))
    # The second send bounced nothing: only the newest one fails, one in a row.
    feed(cli, monkeypatch, delayed("flaky@corp.example.org", sid, third))
    assert sending.store.get("flaky@corp.example.org").status == Status.ACTIVE
    # The same send reported twice (a delay, then the give-up) still counts once.
    again = delayed("flaky@corp.example.org", sid, third).replace("delay-", "given-up-")
    feed(cli, monkeypatch, again)
    assert sending.store.get("flaky@corp.example.org").status == Status.ACTIVE
    feed(cli, monkeypatch, delayed("flaky@corp.example.org", sid, second))
    assert sending.store.get("flaky@corp.example.org").status == Status.BOUNCED


INBOUND_SECRET = "inbound-secret-0123456789"


@pytest.fixture
def parse_hook(web, monkeypatch):
    """SendGrid Inbound Parse posting to the real web app (multipart form data)."""
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__INBOUND_SECRET", INBOUND_SECRET)
    workspace = open_workspace(web.workspace.root)
    with running(build_app(workspace, web.engine, web.signer)) as url:

        def post(fields: dict[str, str], secret: str = INBOUND_SECRET) -> httpx.Response:
            return httpx.post(
                f"{url}/webhooks/inbound/{secret}",
                files={name: (None, value) for name, value in fields.items()},
            )

        yield post


def test_inbound_parse_posts_of_the_raw_mail_are_classified_and_applied(web, parse_hook):
    sid = web.store.add("gone@example.net", context=Context(Source.CLI)).id
    raw = POSTFIX.format(address="gone@example.net", sid=sid).replace("\n", "\r\n")
    envelope = json.dumps({"to": ["bounces@follicle-notes.example.com"], "from": ""})
    answer = parse_hook({"email": raw, "envelope": envelope, "to": "x", "from": "y"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "bounce" and answer.json()["changed"] is True
    assert web.store.get("gone@example.net").status == Status.BOUNCED
    assert parse_hook({"email": raw}).json()["duplicate"] is True  # a retried post


def test_inbound_parse_without_the_raw_mail_still_reads_a_mailto_unsubscribe(web, parse_hook):
    sid = web.store.add("leaving@mail.example", context=Context(Source.CLI)).id
    token = web.signer.sign(Purpose.UNSUBSCRIBE, sid, 1)
    headers = (
        "From: leaving@mail.example\r\nTo: unsubscribe@follicle-notes.example.com\r\n"
        f"Subject: unsubscribe-{token}\r\nMessage-ID: <u-9@mail.example>\r\n"
        "Content-Type: multipart/alternative; boundary=x\r\n"
    )
    answer = parse_hook({"headers": headers, "text": "Please take me off.", "subject": "s"})
    assert answer.json()["kind"] == "unsubscribe", answer.text
    assert web.store.get("leaving@mail.example").status == Status.UNSUBSCRIBED
    assert web.store.events(sid)[-1].source == "mailto"


def test_inbound_parse_needs_the_secret_in_the_path(web, parse_hook):
    sid = web.store.add("kept@example.net", context=Context(Source.CLI)).id
    raw = POSTFIX.format(address="kept@example.net", sid=sid)
    for wrong in ("inbound-secret-0123456780", "x", INBOUND_SECRET[:-1]):
        assert parse_hook({"email": raw}, secret=wrong).status_code == 404
    assert web.store.get("kept@example.net").status == Status.ACTIVE
    assert parse_hook({"subject": "no mail"}).status_code == 400


def test_inbound_parse_is_off_without_a_secret(web):
    answer = httpx.post(
        f"{web.url}/webhooks/inbound/anything-at-all-here", files={"email": (None, OTHER)}
    )
    assert answer.status_code == 404


def test_a_database_that_cannot_be_reached_asks_the_mail_system_to_retry(cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    stdin = io.TextIOWrapper(io.BytesIO(OTHER.encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    result = cli("inbound")
    assert result.code == 75, (result.code, result.err)
    assert "error:" in result.err


def test_inbound_parse_takes_mail_larger_than_a_form_but_not_past_its_limit(web, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__INBOUND_SECRET", INBOUND_SECRET)
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__MAX_BODY_BYTES", str(300 * 1024))
    app = build_app(open_workspace(web.workspace.root), web.engine, web.signer)
    big = OTHER + "x" * (200 * 1024)  # over the pages' 64 KB cap, under the webhook's
    with running(app) as url:
        posted = httpx.post(
            f"{url}/webhooks/inbound/{INBOUND_SECRET}", files={"email": (None, big)}
        )
        assert posted.status_code == 200 and posted.json()["kind"] == "other"
        huge = OTHER + "x" * (400 * 1024)
        refused = httpx.post(
            f"{url}/webhooks/inbound/{INBOUND_SECRET}", files={"email": (None, huge)}
        )
        assert refused.status_code == 413


# Gmail's shape: the human part is itself multipart/alternative, the diagnostic is folded
# over three lines, X-Failed-Recipients names the address, and the original comes back whole.
GMAIL = """\
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: news@follicle-notes.example.com
Subject: Delivery Status Notification (Failure)
Message-ID: <6571a0b2.gm-1@mx.google.com>
X-Failed-Recipients: {address}
MIME-Version: 1.0
Content-Type: multipart/report; boundary="G1"; report-type=delivery-status

--G1
Content-Type: multipart/alternative; boundary="G2"

--G2
Content-Type: text/plain; charset="UTF-8"

Address not found

Your message wasn't delivered to {address} because the address couldn't be found.

--G2
Content-Type: text/html; charset="UTF-8"

<html><body><h2>Address not found</h2></body></html>

--G2--

--G1
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; news@follicle-notes.example.com
Arrival-Date: Wed, 02 Dec 2026 02:00:00 -0800 (PST)
X-Original-Message-ID: <send-1.sub-{sid}@follicle-notes.example.com>

Final-Recipient: rfc822; {address}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (192.0.2.27, the server for the domain
 gmail.example.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does
 not exist. Please try 550-5.1.1 double-checking the recipient's email address
 for typos. 550 5.1.1 ab12cd34 - gsmtp
Last-Attempt-Date: Wed, 02 Dec 2026 02:00:01 -0800 (PST)

--G1
Content-Type: message/rfc822

From: Follicle Notes <news@follicle-notes.example.com>
To: {address}
Message-ID: <send-1.sub-{sid}@follicle-notes.example.com>
Subject: Microneedling
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Hi there,
--G1--
"""


def test_a_gmail_shaped_bounce_marks_the_subscriber_bounced(sending, cli, monkeypatch):
    sid = person(sending, "nobody.here@gmail.example")
    result = feed(cli, monkeypatch, GMAIL.format(address="nobody.here@gmail.example", sid=sid))
    assert result.code == 0, result.err
    [applied] = json.loads(result.out)
    assert applied["kind"] == "bounce" and applied["changed"] is True, applied
    assert applied["subscriber_id"] == sid and applied["detail"] == "5.1.1"
    assert sending.store.get("nobody.here@gmail.example").status == Status.BOUNCED
    [event] = sending.store.events(sid)[-1:]
    assert event.source == "provider-event" and "6571a0b2.gm-1@mx.google.com" in event.detail
