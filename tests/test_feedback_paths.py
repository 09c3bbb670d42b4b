"""Every way feedback comes back takes the address out of the next send, end to end: real
sends (SendGrid through its local stand-in, SMTP into the test server), the provider's
answer built from what was actually sent, posted to the real web app or piped to
`newsletter inbound`, and a next send that no longer reaches them."""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
from urllib.parse import unquote, urlsplit

import httpx
from conftest import EventSigner, running
from sendgrid_standin import SendGridStandIn
from smtp_server import SmtpServer

from newsletter.domain.subscriber import Source, Status
from newsletter.infra.workspace import open_workspace
from newsletter.services.subscribers import Context
from newsletter.web.server import build_app

KEY = "SG.test-key"
SECRET_PATH = "inbound-secret-0123456789"
BOUNCES = "bounces.follicle-notes.example.com"
UNSUBSCRIBE = "unsubscribe@follicle-notes.example.com"


def dsn(envelope: str, address: str) -> str:
    """A Postfix-shaped bounce of a mail forwarded elsewhere: only the envelope names it."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: {envelope}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-e2e@mx.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B--\r\n"
    )


def arf(original: bytes) -> str:
    """An abuse report carrying the headers of the mail as the reader got it."""
    headers = original.split(b"\r\n\r\n", 1)[0].decode()
    return (
        "From: fbl@isp.example\r\nTo: abuse@follicle-notes.example.com\r\n"
        "Subject: Abuse report\r\nMessage-ID: <arf-e2e@isp.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n\r\n"
        f"--F\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n\r\n--F--\r\n"
    )


def mailto_reply(original: bytes, sender: str) -> str:
    """What a mail client sends for the List-Unsubscribe mailto: target."""
    message = email.message_from_bytes(original, policy=email.policy.default)
    target = re.search(r"<mailto:([^>]+)>", str(message["List-Unsubscribe"])).group(1)
    parts = urlsplit("mailto:" + target)
    subject = unquote(parts.query.split("subject=", 1)[1])
    return (
        f"From: {sender}\r\nTo: {parts.path}\r\nSubject: {subject}\r\n"
        "Message-ID: <mailto-e2e@mail.example>\r\n\r\n"
    )


def test_every_feedback_path_takes_the_address_out_of_the_next_send(web, sending, cli, monkeypatch):
    signer = EventSigner()
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", signer.public)
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__INBOUND_SECRET", SECRET_PATH)
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_ADDRESS", UNSUBSCRIBE)
    monkeypatch.setenv("NEWSLETTER_SMTP__BOUNCE_DOMAIN", BOUNCES)
    monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    paths = ["sg-bounce", "sg-spam", "sg-unsubscribe", "dsn", "arf", "mailto", "stays"]
    people = {
        path: web.store.add(f"{path}@example.org", context=Context(Source.CLI)).id for path in paths
    }
    app = build_app(open_workspace(web.workspace.root), web.engine, web.signer)
    with running(app) as url, SendGridStandIn(api_key=KEY) as standin, SmtpServer() as smtp:
        monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", standin.url)
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", smtp.host)
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(smtp.port))

        # SendGrid: events carry back the custom_args each message was sent with.
        sending.run("sendgrid", batch_size=1000)
        sent = {
            p["to"][0]["email"]: p["custom_args"]
            for body in standin.accepted
            for p in body["personalizations"]
        }
        events = []
        for n, (path, kind, extra) in enumerate(
            [
                ("sg-bounce", "bounce", {"type": "bounce", "reason": "550 5.1.1 no such user"}),
                ("sg-spam", "spamreport", {}),
                ("sg-unsubscribe", "unsubscribe", {}),
            ]
        ):
            address = f"{path}@example.org"
            events.append(
                {"event": kind, "email": address, "sg_event_id": f"e2e-{n}", "timestamp": 1}
                | sent[address]
                | extra
            )
        body = json.dumps(events).encode()
        answer = httpx.post(f"{url}/webhooks/sendgrid", content=body, headers=signer.headers(body))
        assert answer.status_code == 200 and answer.json()["changes"] == 3, answer.text

        # SMTP: the bounce, the complaint and the mailto reply answer what the server got.
        sending.run("smtp")
        got = {m.rcpt_tos[0]: m for m in smtp.messages}
        bounce = dsn(got["dsn@example.org"].mail_from, "elsewhere@forward.example")
        answer = httpx.post(
            f"{url}/webhooks/inbound/{SECRET_PATH}", files={"email": (None, bounce)}
        )
        assert answer.json()["changed"] is True, answer.text
        for mail in (
            arf(got["arf@example.org"].data),
            mailto_reply(got["mailto@example.org"].data, "mailto@example.org"),
        ):
            stdin = io.TextIOWrapper(io.BytesIO(mail.encode()))
            monkeypatch.setattr("sys.stdin", stdin)
            result = cli("inbound", "--json")
            assert result.code == 0 and json.loads(result.out)[0]["changed"] is True, result.out

        expected = {
            "sg-bounce": Status.BOUNCED,
            "sg-spam": Status.COMPLAINED,
            "sg-unsubscribe": Status.UNSUBSCRIBED,
            "dsn": Status.BOUNCED,
            "arf": Status.COMPLAINED,
            "mailto": Status.UNSUBSCRIBED,
            "stays": Status.ACTIVE,
        }
        for path, status in expected.items():
            assert web.store.get_by_id(people[path]).status == status, path

        # The next send reaches only the one who stayed.
        before = len(smtp.messages)
        _, final = sending.run("smtp")
        assert final.counts["sent"] == 1
        assert [m.rcpt_tos for m in smtp.messages[before:]] == [["stays@example.org"]]
