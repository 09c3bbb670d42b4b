"""Recipients' MIME messages, made by substitution into one pre-encoded template.

The email package takes milliseconds to build and quoted-printable-encode a 40 KB message,
which would make every send CPU-bound. Instead the rendered issue is encoded once per
batch: the text and HTML parts become quoted-printable chunks around the placeholders, each
chunk encoded on its own lines (soft line breaks before and after every value), so a
recipient's message is a join of bytes plus their few encoded values and headers.

The result is multipart/alternative (text/plain, then text/html), UTF-8, quoted-printable.
Header values from people (names) and editors (subjects) have CR and LF folded into spaces,
so no value can start a header of its own.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr

from newsletter.domain.personalize import Recipient, RenderedIssue, recipient_values

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
# Headers a recipient's extra headers may not set: the message's own identity.
RESERVED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "cc",
    "bcc",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}


@dataclass(frozen=True)
class Sender:
    address: str
    name: str
    reply_to: str | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def one_line(value: str) -> str:
    """Collapse any run of whitespace, CR and LF included, into one space."""
    return " ".join(value.split())


def message_id(stream: str, key: str, domain: str) -> str:
    """Derived from the send and the recipient, so a resend carries the same id."""
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in f"{stream}.{key}")
    return f"<{safe}@{domain}>"


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends (binascii's encoder is C, and fast)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", CRLF)


def _header_text(value: str) -> str:
    """An unstructured header value: one line; RFC 2047 encoded words when not ASCII."""
    value = one_line(value)
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=998).encode()


def mailbox(name: str | None, address: str) -> str:
    """`Name <address>`, the name quoted or encoded as needed; UTF-8 addresses stay raw
    (they need SMTPUTF8 anyway)."""
    display = one_line(name or "")
    if "=?" in display:
        # A name that looks like an encoded-word ("=?utf-8?q?X=0D=0ABcc:...?=") is the
        # person's literal text: encoded whole, so no client decodes it into a header.
        return f"{Header(display, 'utf-8').encode()} <{address}>"
    if address.isascii():
        return formataddr((display, address), charset="utf-8")
    if not display:
        return f"<{address}>"
    return formataddr((display, "x@invalid"), charset="utf-8").rsplit(" <", 1)[0] + f" <{address}>"


_LINE_START_DOT = re.compile(rb"(?m)^\.")


def dot_stuff(data: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2): a line that starts with '.' gets another."""
    return _LINE_START_DOT.sub(b"..", data)


class _Part:
    """One MIME part as encoded chunks and the slots between them.

    Every chunk starts a line, so SMTP dot-stuffing can be done chunk by chunk, once.
    """

    __slots__ = ("chunks", "slots", "stuffed")

    def __init__(self, parts: list[str], slots: list[tuple[int, str, str]], escape: bool) -> None:
        self.chunks: list[bytes] = []
        self.slots: list[tuple[int, str, str, bool]] = []
        names = {index: (name, fallback) for index, name, fallback in slots}
        for index, piece in enumerate(parts):
            if index in names:
                name, fallback = names[index]
                self.slots.append((len(self.chunks), name, fallback, escape))
                self.chunks.append(b"")
            elif piece:
                encoded = _qp(piece)
                # A chunk that does not end a line is closed by a soft break, so the value
                # after it starts on a fresh line and no line grows past 76 characters.
                if not encoded.endswith(CRLF):
                    encoded += SOFT_BREAK
                self.chunks.append(encoded)
        self.stuffed = [dot_stuff(chunk) for chunk in self.chunks]

    def fill(
        self,
        values: dict[str, str],
        cache: dict[tuple[str, str, bool], bytes],
        stuffed: bool,
    ) -> bytes:
        chunks = (self.stuffed if stuffed else self.chunks).copy()
        for index, name, fallback, escape in self.slots:
            key = (name, fallback, escape)
            if key not in cache:
                value = values.get(name) or fallback
                encoded = _qp(html.escape(value) if escape else value)
                encoded = encoded if encoded.endswith(CRLF) else encoded + SOFT_BREAK
                cache[key] = dot_stuff(encoded) if stuffed else encoded
            chunks[index] = cache[key]
        return b"".join(chunks)


class MessageTemplate:
    """Everything about a batch's messages that is the same for each recipient."""

    def __init__(
        self,
        rendered: RenderedIssue,
        sender: Sender,
        *,
        date: datetime,
        subject_prefix: str = "",
    ) -> None:
        self.sender = sender
        self.boundary = f"=_nl_{secrets.token_hex(12)}"  # '=_' cannot occur in QP bodies
        common = [f"From: {mailbox(sender.name, sender.address)}"]
        if sender.reply_to:
            common.append(f"Reply-To: {mailbox(None, sender.reply_to)}")
        common += [
            f"Subject: {_header_text(subject_prefix + rendered.subject)}",
            f"Date: {format_datetime(date)}",
        ]
        self.common = "\r\n".join(common).encode("utf-8")
        self.structure = (
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n\r\n'
        ).encode("ascii")
        part_head = (
            '--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.text_head = part_head.format(b=self.boundary, kind="plain").encode("ascii")
        self.html_head = CRLF + part_head.format(b=self.boundary, kind="html").encode("ascii")
        self.end = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        text_template, html_template = rendered._text, rendered._html
        self.text = _Part(text_template.parts, text_template.slots, escape=False)
        self.html = _Part(html_template.parts, html_template.slots, escape=True)

    def render(self, recipient: Recipient, msgid: str, *, stuffed: bool = False) -> bytes:
        """The recipient's message; `stuffed` gives it dot-stuffed, ready for SMTP DATA."""
        headers = [f"To: {mailbox(recipient.name, recipient.email)}", f"Message-ID: {msgid}"]
        for name, value in recipient.headers:
            if name.lower() in RESERVED or not name.replace("-", "").isalnum():
                raise ValueError(f"header {name!r} cannot be set per recipient")
            headers.append(f"{name}: {_header_text(value)}")
        values = recipient_values(recipient)
        cache: dict[tuple[str, str, bool], bytes] = {}
        return b"".join(
            (
                self.common,
                CRLF,
                "\r\n".join(headers).encode("utf-8"),
                CRLF,
                self.structure,
                self.text_head,
                self.text.fill(values, cache, stuffed),
                self.html_head,
                self.html.fill(values, cache, stuffed),
                self.end,
            )
        )


def needs_smtputf8(recipient: Recipient, sender: Sender) -> bool:
    return not (recipient.email.isascii() and sender.address.isascii())
