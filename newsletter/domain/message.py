"""One recipient's MIME message: multipart/alternative, text/plain then text/html, UTF-8.

Header values come from people (names) and editors (subjects): CR and LF are folded into
spaces before they reach a header, so no value can start a header of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from newsletter.domain.personalize import PersonalizedMessage, Recipient

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


# Fold only past RFC 5322's hard limit: at 78 the email package turns a long URL in
# List-Unsubscribe into RFC 2047 encoded words, which mail clients do not read as a URL.
_ASCII = policy.SMTP.clone(max_line_length=998)
_UTF8 = policy.SMTPUTF8.clone(max_line_length=998)


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


def _address(display: str | None, email: str) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=one_line(display or ""), username=local, domain=domain)


def message_id(stream: str, key: str, domain: str) -> str:
    """Derived from the send and the recipient, so a resend carries the same id."""
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in f"{stream}.{key}")
    return f"<{safe}@{domain}>"


def build_message(
    personal: PersonalizedMessage,
    recipient: Recipient,
    sender: Sender,
    *,
    msgid: str,
    date: datetime,
    subject_prefix: str = "",
) -> EmailMessage:
    needs_utf8 = not (recipient.email.isascii() and sender.address.isascii())
    message = EmailMessage(policy=_UTF8 if needs_utf8 else _ASCII)
    message["From"] = _address(sender.name, sender.address)
    message["To"] = _address(recipient.name, recipient.email)
    if sender.reply_to:
        message["Reply-To"] = _address(None, sender.reply_to)
    message["Subject"] = one_line(f"{subject_prefix}{personal.subject}")
    message["Date"] = format_datetime(date)
    message["Message-ID"] = msgid
    for name, value in recipient.headers:
        if name.lower() in RESERVED or not name.replace("-", "").isalnum():
            raise ValueError(f"header {name!r} cannot be set per recipient")
        message[name] = one_line(value)
    message.set_content(personal.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(personal.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message
