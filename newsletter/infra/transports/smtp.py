"""SMTP: a small pool of reused connections, one MAIL/RCPT/DATA exchange per recipient.

Speaking the exchange step by step tells where a failure happened: before DATA nothing can
have been delivered (retry); while DATA is in flight the server may have it (uncertain).
Each recipient is pulled from the dispatcher just before its MAIL command, and its outcome
is yielded as soon as the server answers.
"""

from __future__ import annotations

import contextlib
import queue
import smtplib
import ssl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from newsletter.domain.message import MessageTemplate, Sender, message_id, needs_smtputf8
from newsletter.domain.personalize import Recipient, RenderedIssue
from newsletter.infra.setting_tables import SmtpSettings
from newsletter.infra.transports.base import (
    Outcome,
    Result,
    TransportFatal,
    TransportUnavailable,
)

MAX_RECONNECTS = 3  # within one batch


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(message.split())}"


def _verdict(code: int, text: bytes | str) -> Outcome:
    result = Result.FAILED if 500 <= code < 600 else Result.RETRY
    return Outcome("", result, error=_reply(code, text))


class SmtpTransport:
    name = "smtp"
    per_message = True

    def __init__(self, settings: SmtpSettings, sender: Sender) -> None:
        self.settings = settings
        self.sender = sender
        self.pool: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue()
        self.context = ssl.create_default_context(
            cafile=str(settings.cafile) if settings.cafile else None
        )

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.security == "tls":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self.context
                )
            else:
                connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.security == "starttls":
                    connection.starttls(context=self.context)
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                connection.login(s.username, password)
            connection.ehlo_or_helo_if_needed()  # MAIL is sent by hand below, not sendmail()
        except smtplib.SMTPAuthenticationError as exc:
            reply = _reply(exc.smtp_code, exc.smtp_error)
            raise TransportFatal(f"SMTP login refused: {reply}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise TransportFatal(f"SMTP server at {s.host}:{s.port}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message
            raise TransportFatal(f"SMTP server certificate not trusted: {reason}") from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportUnavailable(
                f"cannot connect to SMTP server {s.host}:{s.port}: {reason}"
            ) from None
        return connection

    def _checkout(self) -> smtplib.SMTP:
        while True:
            try:
                connection = self.pool.get_nowait()
            except queue.Empty:
                return self._connect()
            try:
                if connection.noop()[0] == 250:  # servers drop idle connections
                    return connection
            except (OSError, smtplib.SMTPException):
                pass
            self._discard(connection)

    def _checkin(self, connection: smtplib.SMTP) -> None:
        if self.pool.qsize() < self.settings.concurrency:
            self.pool.put(connection)
        else:
            self._quit(connection)

    @staticmethod
    def _discard(connection: smtplib.SMTP) -> None:
        with contextlib.suppress(OSError):
            connection.close()

    @staticmethod
    def _quit(connection: smtplib.SMTP) -> None:
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            SmtpTransport._discard(connection)

    def close(self) -> None:
        while True:
            try:
                self._quit(self.pool.get_nowait())
            except queue.Empty:
                return

    # -- sending ---------------------------------------------------------------------------

    def probe(self) -> None:
        self._checkin(self._checkout())

    def send(
        self,
        rendered: RenderedIssue,
        recipients: Iterable[Recipient],
        *,
        stream: str,
        subject_prefix: str = "",
    ) -> Iterator[Outcome]:
        connection: smtplib.SMTP | None = self._checkout()
        template = MessageTemplate(
            rendered, self.sender, date=datetime.now(UTC), subject_prefix=subject_prefix
        )
        reconnects, reason = 0, ""
        try:
            for recipient in recipients:
                msgid = message_id(stream, recipient.key, self.sender.domain)
                data = template.render(recipient, msgid, stuffed=True)
                tries = 0
                while True:
                    if connection is None:
                        # A server may close a connection at any time (a per-connection
                        # message limit, a restart): reconnect and go on with the batch.
                        if reconnects >= MAX_RECONNECTS:
                            raise TransportUnavailable(f"gave up reconnecting: {reason}")
                        reconnects += 1
                        connection = self._connect()
                    try:
                        outcome = self._exchange(connection, recipient, data, msgid)
                        break
                    except _Broken as broken:
                        self._discard(connection)
                        connection, reason = None, broken.reason
                        if broken.result == Result.UNCERTAIN or tries:
                            outcome = Outcome("", broken.result, error=broken.reason)
                            break
                        tries += 1  # certainly not delivered: once more, reconnected
                yield Outcome(recipient.key, outcome.result, outcome.provider_id, outcome.error)
        except BaseException:
            if connection is not None:
                self._discard(connection)
            raise
        if connection is not None:
            self._checkin(connection)

    def _exchange(
        self, connection: smtplib.SMTP, recipient: Recipient, data: bytes, msgid: str
    ) -> Outcome:
        options = ""
        if needs_smtputf8(recipient, self.sender):
            if not connection.has_extn("smtputf8"):
                return Outcome(
                    "",
                    Result.FAILED,
                    error="server does not accept SMTPUTF8 (internationalized) addresses",
                )
            options = " SMTPUTF8 BODY=8BITMIME"
        # MAIL and RCPT by hand: smtplib's mail() and rcpt() parse each address again
        # (email.utils.parseaddr), a sixth of a send's CPU; ours are validated addr-specs.
        connection.command_encoding = "utf-8" if options else "ascii"
        try:
            sender = recipient.return_path or self.sender.address
            connection.putcmd("mail", f"FROM:<{sender}>{options}")
            code, text = connection.getreply()
            if code // 100 != 2:
                connection.rset()
                return _verdict(code, text)
            connection.putcmd("rcpt", f"TO:<{recipient.email}>")
            code, text = connection.getreply()
            if code // 100 != 2:
                connection.rset()
                return _verdict(code, text)
            connection.putcmd("data")
            code, text = connection.getreply()
            if code != 354:
                connection.rset()  # a 421 here closes the connection: caught just below
                return _verdict(code, text)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise _Broken(Result.RETRY, f"connection lost before DATA: {exc}") from None
        try:
            # The message comes dot-stuffed from its template: no per-message regex here
            # (smtplib's data() would scan all 40 KB of it twice for every recipient).
            connection.send(data + b".\r\n")
            code, text = connection.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise _Broken(Result.UNCERTAIN, f"connection lost during DATA: {exc}") from None
        if code // 100 != 2:
            return _verdict(code, text)
        return Outcome("", Result.SENT, provider_id=msgid)


class _Broken(Exception):
    def __init__(self, result: Result, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason
