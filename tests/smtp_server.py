"""A recording SMTP server on loopback, for the SMTP transport tests.

It runs aiosmtpd in a background thread on 127.0.0.1 with an OS-assigned port, records every
accepted message, and can be told to refuse chosen recipients, fail at DATA or drop the
connection, so the transport's error handling can be tested without a real mail server.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import shutil
import ssl
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Received", "SmtpServer", "self_signed_cert"]

TlsMode = Literal["none", "starttls", "tls"]

# Room for ~50 MB messages plus base64 overhead; advertised as SIZE in EHLO.
DATA_SIZE_LIMIT = 128 * 1024 * 1024


def _drop_login_data_warning(record: logging.LogRecord) -> bool:
    """aiosmtpd 1.4 logs "Session.login_data is deprecated" at WARNING on every successful
    AUTH, from its own code; it would clutter every failing test's captured log."""
    return not record.getMessage().startswith("Session.login_data is deprecated")


logging.getLogger("mail.log").addFilter(_drop_login_data_warning)

# Longest DATA line without its CRLF that aiosmtpd accepts (1001 with CRLF, RFC 5321 4.5.3.1.6
# plus a stuffed dot).
_MAX_LINE = 999


@dataclass
class Received:
    """One message the server accepted (answered 250 at end of DATA)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the raw message as received (dot-unstuffed, CRLF line ends kept)
    session_id: int  # which connection it came over (to verify connection reuse)
    mail_at: float = 0.0  # time.monotonic() when its MAIL FROM arrived


def self_signed_cert(dir: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate and key for 127.0.0.1/localhost into `dir`.

    EC P-256 because it is generated in milliseconds; the extensions (SKI/AKI, critical
    basicConstraints, serverAuth) keep it acceptable to OpenSSL's strict X.509 checks, which
    Python 3.13+ enables in ssl.create_default_context().
    """
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = dir / "cert.pem"
    key_path = dir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _SMTP(SMTP):
    """aiosmtpd's SMTP protocol, one instance per connection, tagged with its session id.

    smtp_DATA is replaced by a bulk reader: aiosmtpd 1.4 reads DATA one line per await, which
    made this server the bottleneck of a 10,000 x 30 KB run (17 s, about half of it in that
    loop, under the same GIL as the client under test). This one reads up to each line that
    ends in "." and applies aiosmtpd's checks (size, 1001-byte lines, dot-unstuffing) to the
    whole message at once.
    """

    # aiosmtpd sizes its StreamReader from this; DATA needs to read a whole message in one
    # readuntil(). Command lines are still held to 512 bytes by aiosmtpd's own check, and
    # DATA lines to _MAX_LINE below.
    line_length_limit = DATA_SIZE_LIMIT + 1024

    def __init__(self, handler: Any, *, session_id: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.session_id = session_id

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        chunks: list[bytes] = []
        size = 0
        too_much = False
        reader = self._reader
        while True:
            try:
                # Every chunk ends in ".\r\n" and so at a line end: the next chunk starts
                # a line, and the message ends at a chunk that is ".\r\n" or ends "\r\n.\r\n".
                chunk = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as e:
                chunk = await reader.read(e.consumed)
                too_much = True
                chunks.clear()
                continue
            except asyncio.CancelledError:
                self._writer.close()
                raise
            size += len(chunk)
            end = chunk == b".\r\n" or chunk.endswith(b"\r\n.\r\n")
            if not too_much:
                chunks.append(chunk)
                if self.data_size_limit and size - 3 * end > self.data_size_limit:
                    too_much = True
                    chunks.clear()
            if end:
                break
        if too_much:
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        raw = b"".join(chunks)[:-3]
        if raw and max(map(len, raw.split(b"\r\n"))) > _MAX_LINE:
            self._set_post_data_state()
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            return
        if raw.startswith(b"."):
            raw = raw[1:]
        content = raw.replace(b"\r\n.", b"\r\n")
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class _Controller(Controller):
    """Controller that accepts port 0 and numbers each connection.

    aiosmtpd 1.4.x's start() connects to `self.port` to trigger its lazy factory, which fails
    for port 0 (aiosmtpd issues #276/#388); we read the bound port first.
    """

    def __init__(self, owner: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def factory(self) -> _SMTP:
        return _SMTP(self.handler, session_id=self._owner._new_session(), **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    """aiosmtpd hooks; kept apart from SmtpServer because aiosmtpd introspects the handler
    (dir/getmembers) on every connection, and the hooks must stay cheap per message."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # AUTH is enforced here rather than with aiosmtpd's auth_required, which warns when
        # TLS is not required and cannot see implicit TLS.
        if self._owner._auth_needed and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        session.mail_at = time.monotonic()  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        owner = self._owner
        if owner._rules:
            refusal = owner._refusal_for(address.lower())
            if refusal is not None:
                return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: _SMTP, session: Session, envelope: Envelope) -> str:
        owner = self._owner
        drop = False
        if owner.delay:
            await asyncio.sleep(owner.delay)
        if owner._hold_after is not None:
            await owner._hold_if_due()
        with owner._cond:
            if owner._data_failures:
                owner._data_failures -= 1
                return owner._data_failure_reply
            owner._messages.append(
                Received(
                    envelope.mail_from or "",
                    envelope.rcpt_tos,  # a fresh list per envelope, no copy needed
                    envelope.original_content or b"",
                    server.session_id,
                    getattr(session, "mail_at", 0.0),
                )
            )
            owner._cond.notify_all()
            if owner._drop_after is not None:
                owner._drop_after -= 1
                if owner._drop_after <= 0:
                    owner._drop_after = None
                    drop = True
        if drop and server.transport is not None:
            # Runs after the 250 below is written: the client sees this message accepted,
            # then the connection vanishes without a 221.
            server.loop.call_soon(server.transport.close)
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 (port 0) that records what it receives and can refuse chosen
    recipients.

    Use as a context manager; every method is safe to call from the test thread while the
    server thread is handling mail.
    """

    host: str
    port: int
    cafile: str | None

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        delay: float = 0.0,
    ) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"tls must be 'none', 'starttls' or 'tls', not {tls!r}")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.tls: TlsMode = tls
        self.delay = delay  # seconds each message takes to be accepted, like a real relay
        self.host = "127.0.0.1"
        self.port = 0
        self.cafile = None
        self._credentials = (
            (username.encode(), password.encode())
            if username is not None and password is not None
            else None
        )
        self._auth_needed = self._credentials is not None
        self._cond = threading.Condition(threading.Lock())
        self._messages: list[Received] = []
        self._sessions = 0
        # Recipient rules: lowercased address -> reply; tempfail entries carry a countdown.
        self._rejects: dict[str, str] = {}
        self._tempfails: dict[str, tuple[str, int]] = {}
        self._rules = False
        self._data_failures = 0
        self._data_failure_reply = ""
        self._drop_after: int | None = None
        self._hold_after: int | None = None
        self._held = 0
        self._tmpdir: str | None = None
        self._controller: _Controller | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> SmtpServer:
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": 0,
            "ready_timeout": 10.0,
            # SMTP's own name; without it every connection calls socket.getfqdn().
            "server_hostname": "localhost",
            "data_size_limit": DATA_SIZE_LIMIT,
            "enable_SMTPUTF8": True,
            # AUTH over plain text only when the test asked for no TLS at all; implicit TLS
            # is invisible to aiosmtpd's check, so it must be off there too.
            "auth_require_tls": self.tls == "starttls",
        }
        if self._credentials is not None:
            kwargs["authenticator"] = self._authenticate
        if self.tls != "none":
            self._tmpdir = tempfile.mkdtemp(prefix="smtp-server-")
            cert, key = self_signed_cert(Path(self._tmpdir))
            self.cafile = str(cert)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            if self.tls == "starttls":
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = True
            else:
                kwargs["ssl_context"] = context
        self._controller = _Controller(self, _Handler(self), **kwargs)
        try:
            self._controller.start()
        except BaseException:
            self._controller.stop(no_assert=True)
            self._controller = None
            self._cleanup()
            raise
        self.port = self._controller.port
        with self._cond:
            # start() opened one connection of its own to wake aiosmtpd up; don't count it.
            self._sessions = 0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # -- what was received --------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        """A snapshot of the accepted messages, oldest first."""
        with self._cond:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """Number of SMTP sessions (TCP connections) opened so far."""
        with self._cond:
            return self._sessions

    def wait_for(self, count: int, timeout: float = 10) -> None:
        """Block until at least `count` messages were accepted; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"got {len(self._messages)} of {count} messages in {timeout} s"
                    )
                self._cond.wait(remaining)

    def by_recipient(self) -> dict[str, int]:
        """How many messages each (lowercased) recipient address got."""
        with self._cond:
            return dict(Counter(r.lower() for m in self._messages for r in m.rcpt_tos))

    # -- failure injection --------------------------------------------------------------

    def reject(self, address: str, code: int = 550, text: str = "5.1.1 No such user") -> None:
        """Permanently refuse `address` (case-insensitive) at RCPT TO."""
        with self._cond:
            self._rejects[address.lower()] = f"{code} {text}"
            self._rules = True

    def tempfail(
        self, address: str, code: int = 451, text: str = "4.3.0 Try again later", times: int = 1
    ) -> None:
        """Refuse `address` at RCPT TO for its next `times` attempts only, then accept it."""
        with self._cond:
            if times > 0:
                self._tempfails[address.lower()] = (f"{code} {text}", times)
            else:
                self._tempfails.pop(address.lower(), None)
            self._rules = bool(self._rejects or self._tempfails)

    def fail_data(self, code: int = 451, text: str = "4.3.0 Queue trouble", times: int = 1) -> None:
        """Refuse the next `times` messages at end of DATA (they are not recorded)."""
        with self._cond:
            self._data_failures = max(times, 0)
            self._data_failure_reply = f"{code} {text}"

    def drop_connection_after(self, messages: int) -> None:
        """Close the connection that carries the `messages`-th next accepted message, right
        after its 250 reply, as if the server died mid-session (once; the count is global)."""
        if messages < 1:
            raise ValueError("messages must be at least 1")
        with self._cond:
            self._drop_after = messages

    def hold_after(self, messages: int) -> None:
        """Accept the next `messages` messages, then keep every later one waiting at the end
        of DATA with no reply until release(): the client cannot know whether it got through."""
        with self._cond:
            self._hold_after = messages

    def wait_held(self, count: int, timeout: float = 10) -> None:
        """Block until `count` messages are waiting for their reply; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._held < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._held} of {count} messages held in {timeout} s")
                self._cond.wait(remaining)

    def release(self) -> None:
        """Let the held messages through (recorded and answered) and hold no more."""
        with self._cond:
            self._hold_after = None
            self._cond.notify_all()

    # -- called from the server thread --------------------------------------------------

    async def _hold_if_due(self) -> None:
        with self._cond:
            if self._hold_after is None:
                return
            if self._hold_after > 0:
                self._hold_after -= 1
                return
            self._held += 1
            self._cond.notify_all()
        while True:  # a poll, so the server's event loop keeps serving other connections
            await asyncio.sleep(0.005)
            with self._cond:
                if self._hold_after is None:
                    self._held -= 1
                    return

    def _new_session(self) -> int:
        with self._cond:
            self._sessions += 1
            return self._sessions

    def _refusal_for(self, address: str) -> str | None:
        with self._cond:
            pending = self._tempfails.get(address)
            if pending is not None:
                reply, left = pending
                if left <= 1:
                    del self._tempfails[address]
                    self._rules = bool(self._rejects or self._tempfails)
                else:
                    self._tempfails[address] = (reply, left - 1)
                return reply
            return self._rejects.get(address)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == self._credentials
        )
        # handled=False makes aiosmtpd send the 535; its default (True) sends nothing at all.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
