"""Tests of the recording SMTP server (tests/smtp_server.py) with the stdlib smtplib client.

The SMTP transport tests trust this server to record and refuse exactly as told, so each
knob is checked here against a plain client.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_server import SmtpServer, self_signed_cert

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as s:
        yield s


def client(server: SmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=5)


def test_plain_send_is_recorded(server: SmtpServer) -> None:
    assert server.port > 0
    with client(server) as c:
        c.sendmail("a@example.org", ["B@example.org", "c@example.org"], MESSAGE)
    server.wait_for(1)
    [m] = server.messages
    assert m.mail_from == "a@example.org"
    assert m.rcpt_tos == ["B@example.org", "c@example.org"]
    assert m.data == MESSAGE
    assert server.connections == 1
    assert server.by_recipient() == {"b@example.org": 1, "c@example.org": 1}


def test_messages_over_one_connection_share_a_session_id(server: SmtpServer) -> None:
    with client(server) as c:
        for _ in range(3):
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    with client(server) as c:
        c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    server.wait_for(4)
    ids = [m.session_id for m in server.messages]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert server.connections == 2
    assert server.by_recipient() == {"b@example.org": 4}


def test_dot_stuffing_and_large_message(server: SmtpServer) -> None:
    body = b"".join(b".line %d\r\n" % i for i in range(100_000))  # ~1.2 MB, dot-led lines
    with client(server) as c:
        c.sendmail("a@example.org", ["b@example.org"], b"Subject: big\r\n\r\n" + body)
    assert server.messages[0].data == b"Subject: big\r\n\r\n" + body


@pytest.mark.parametrize(
    "message",
    [
        b"\r\n",
        b".\r\n",
        b"..\r\n",
        b"Hello.\r\n.\r\nEnd.\r\n",
        b"a\r\n..\r\n.x\r\n. \r\nlast.\r\n",
        b"x" * 999 + b"\r\n",
    ],
)
def test_data_is_recorded_exactly(server: SmtpServer, message: bytes) -> None:
    """The bulk DATA reader must end and unstuff exactly where aiosmtpd's line reader does."""
    with client(server) as c:
        c.sendmail("a@example.org", ["b@example.org"], message)
    assert server.messages[0].data == message


def test_empty_data_and_over_long_lines(server: SmtpServer) -> None:
    with client(server) as c:
        c.ehlo()
        c.mail("a@example.org")
        c.rcpt("b@example.org")
        c.putcmd("data")
        assert c.getreply()[0] == 354
        c.send(b".\r\n")
        assert c.getreply()[0] == 250
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("a@example.org", ["b@example.org"], b"x" * 1000 + b"\r\n")
        assert err.value.smtp_code == 500
        assert c.docmd("NOOP " + "x" * 2000)[0] == 500  # command lines stay limited
        assert c.noop()[0] == 250
    assert [m.data for m in server.messages] == [b""]


def test_data_size_limit(server: SmtpServer) -> None:
    assert server._controller is not None
    server._controller.SMTP_kwargs["data_size_limit"] = 1000  # for new connections
    with client(server) as c:
        c.ehlo()
        c.mail("a@example.org")  # no SIZE= parameter, so the limit bites at DATA
        c.rcpt("b@example.org")
        assert c.data(b"y" * 998 + b"\r\n")[0] == 250  # 1000 bytes: at the limit
        c.mail("a@example.org")
        c.rcpt("b@example.org")
        assert c.data(b"y" * 999 + b"\r\n")[0] == 552
        assert c.noop()[0] == 250
    assert len(server.messages) == 1


def test_reject_refuses_recipient_case_insensitively(server: SmtpServer) -> None:
    server.reject("Gone@Example.org")
    with client(server) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            c.sendmail("a@example.org", ["gone@example.ORG"], MESSAGE)
        assert err.value.recipients == {"gone@example.ORG": (550, b"5.1.1 No such user")}
        # With another, accepted recipient the message goes through to that one only.
        refused = c.sendmail("a@example.org", ["gone@example.org", "b@example.org"], MESSAGE)
        assert refused == {"gone@example.org": (550, b"5.1.1 No such user")}
    assert [m.rcpt_tos for m in server.messages] == [["b@example.org"]]


def test_tempfail_refuses_only_times(server: SmtpServer) -> None:
    server.tempfail("b@example.org", times=2)
    with client(server) as c:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
                c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            assert err.value.recipients["b@example.org"][0] == 451
        c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert len(server.messages) == 1


def test_fail_data(server: SmtpServer) -> None:
    server.fail_data(code=452, text="4.3.1 Full", times=1)
    with client(server) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert err.value.smtp_code == 452
        c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert len(server.messages) == 1


def test_starttls_with_cafile() -> None:
    with SmtpServer(tls="starttls") as server:
        assert server.cafile is not None
        context = ssl.create_default_context(cafile=server.cafile)
        with client(server) as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as err:
                c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            assert err.value.smtp_code == 530  # must STARTTLS first
            c.starttls(context=context)
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert len(server.messages) == 1


def test_implicit_tls_with_auth() -> None:
    with SmtpServer(tls="tls", username="user", password="pw") as server:
        assert server.cafile is not None
        context = ssl.create_default_context(cafile=server.cafile)
        with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5) as c:
            c.login("user", "pw")
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert len(server.messages) == 1


def test_tls_refused_without_the_cafile() -> None:
    # smtplib verifies nothing by default, so pass a system-trust context explicitly.
    context = ssl.create_default_context()
    with SmtpServer(tls="tls") as server, pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5)


def test_auth_required_and_wrong_password_refused() -> None:
    with SmtpServer(username="user", password="secret") as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as err:
                c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            assert err.value.smtp_code == 530
            with pytest.raises(smtplib.SMTPAuthenticationError) as auth_err:
                c.login("user", "wrong")
            assert auth_err.value.smtp_code == 535
        for mechanism in ("PLAIN", "LOGIN"):
            with client(server) as c:
                c.ehlo()
                c.user, c.password = "user", "secret"
                c.auth(mechanism, getattr(c, f"auth_{mechanism.lower()}"))
                c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert len(server.messages) == 2


def test_starttls_auth_only_after_tls() -> None:
    with SmtpServer(tls="starttls", username="user", password="pw") as server:
        assert server.cafile is not None
        with client(server) as c:
            c.ehlo()
            assert not c.has_extn("auth")
            c.starttls(context=ssl.create_default_context(cafile=server.cafile))
            c.login("user", "pw")
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert len(server.messages) == 1


def test_drop_connection_after(server: SmtpServer) -> None:
    server.drop_connection_after(2)
    with client(server) as c:
        c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        c.sendmail("a@example.org", ["b@example.org"], MESSAGE)  # accepted, then dropped
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    # A new connection works again and the drop does not repeat.
    with client(server) as c:
        for _ in range(3):
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert len(server.messages) == 5
    assert server.connections == 2


def test_smtputf8_address(server: SmtpServer) -> None:
    message = "Subject: grüße\r\n\r\nÄpfel\r\n".encode()
    with client(server) as c:
        c.ehlo()
        assert c.has_extn("smtputf8") and c.has_extn("8bitmime")
        c.sendmail("jörg@exämple.org", ["żółw@example.org"], message, mail_options=["SMTPUTF8"])
    [m] = server.messages
    assert m.mail_from == "jörg@exämple.org"
    assert m.rcpt_tos == ["żółw@example.org"]
    assert m.data == message


def test_wait_for_times_out(server: SmtpServer) -> None:
    with pytest.raises(TimeoutError):
        server.wait_for(1, timeout=0.05)


def test_self_signed_cert_passes_strict_verification(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    for host in ("127.0.0.1", "localhost"):
        to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
        c = client_ctx.wrap_bio(to_client, to_server, server_hostname=host)
        s = server_ctx.wrap_bio(to_server, to_client, server_side=True)
        for _ in range(10):  # drive the in-memory handshake to completion
            done = True
            for end in (c, s):
                try:
                    end.do_handshake()
                except ssl.SSLWantReadError:
                    done = False
            if done:
                break
        assert c.getpeercert()["subjectAltName"] == (
            ("DNS", "localhost"),
            ("IP Address", "127.0.0.1"),
        )
