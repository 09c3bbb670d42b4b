"""What a mail that comes back is: an RFC 3464 delivery status notification (a bounce), an
RFC 5965 ARF feedback report (a complaint), a mail to the unsubscribe address carrying an
unsubscribe token, or anything else. Pure: it reads bytes, it changes nothing."""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses

_TOKEN = re.compile(r"(?:unsubscribe-|/u/)([A-Za-z0-9_-]{40,60})")
# Our Message-IDs, <send-N.sub-ID@domain>: the delivery a returned copy is about.
_KEY = re.compile(r"<(?:send-(\d+)\.)?sub-(\d+)@[^<>]+>")
_VERP = re.compile(r"bounces\+([A-Za-z0-9_-]{40,60})@")  # the envelope sender we gave


@dataclass(frozen=True)
class Inbound:
    kind: str  # bounce | soft-bounce | complaint | unsubscribe | other
    message_id: str | None  # of the mail that came back: stored once
    addresses: list[str] = field(default_factory=list)  # who it is about
    keys: list[tuple[int | None, int]] = field(default_factory=list)  # (send, subscriber)
    token: str | None = None  # an unsubscribe token, or a VERP token for a bounce
    detail: str | None = None


def classify(raw: bytes) -> Inbound:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    message_id = (message.get("Message-ID") or "").strip() or None
    content = message.get_content_type()
    report = (message.get_param("report-type") or "").lower()
    if content == "multipart/report" and report == "delivery-status":
        return _dsn(message, message_id)
    if content == "multipart/report" and report == "feedback-report":
        return _arf(message, message_id)
    text = " ".join(
        [str(message.get("To", "")), str(message.get("Subject", "")), _text_of(message)]
    )
    token = _TOKEN.search(text)
    if token:
        sender = [a for _, a in getaddresses([str(message.get("From", ""))]) if a]
        return Inbound("unsubscribe", message_id, sender, token=token.group(1))
    return Inbound("other", message_id, detail=str(message.get("Subject", ""))[:200])


def _dsn(message: Message, message_id: str | None) -> Inbound:
    hard: list[str] = []
    soft: list[str] = []
    statuses: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in part.get_payload():  # per-message fields, then one block a recipient
            if not isinstance(block, Message):
                continue
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            status = str(block.get("Status") or "").strip()
            if not recipient or not status:
                continue
            address = recipient.split(";", 1)[-1].strip().strip("<>")
            statuses.append(status)
            (hard if status.startswith("5") else soft).append(address)
    keys = _keys(message)
    to = " ".join(str(message.get(h, "")) for h in ("To", "Delivered-To", "X-Original-To"))
    verp = _VERP.search(to)
    token = verp.group(1) if verp else None
    detail = ", ".join(statuses)[:200]
    if hard:
        return Inbound("bounce", message_id, hard, keys, token=token, detail=detail)
    if soft:
        return Inbound("soft-bounce", message_id, soft, keys, token=token, detail=detail)
    return Inbound("other", message_id, detail="a delivery report without a recipient")


def _arf(message: Message, message_id: str | None) -> Inbound:
    addresses: list[str] = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            original = part.get_payload()
            if isinstance(original, list) and original:
                original = original[0]
            if isinstance(original, str):
                original = email.message_from_string(original)
            if isinstance(original, Message):
                addresses += [a for _, a in getaddresses([str(original.get("To", ""))]) if a]
    return Inbound("complaint", message_id, addresses, _keys(message), detail="abuse report")


def _keys(message: Message) -> list[tuple[int | None, int]]:
    found = {
        (int(send) if send else None, int(sub)) for send, sub in _KEY.findall(message.as_string())
    }
    return sorted(found, key=lambda key: (key[0] is None, key[0] or 0, key[1]))  # sends first


def _text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode("utf-8", "replace")[:20000]
    return ""


def from_parse_post(fields: dict[str, str]) -> bytes:
    """The mail inside a SendGrid Inbound Parse post. With "POST the raw, full MIME
    message" on, the `email` field is the mail itself; otherwise it is rebuilt from the
    `headers` and `text` fields, which is enough for a mailto unsubscribe but not for a
    bounce or a report (their parts are gone). The envelope recipient (a VERP address)
    goes in front as X-Original-To, as Postfix's pipe would write it."""
    raw = fields.get("email")
    if raw is None:
        headers = re.sub(
            r"(?im)^(content-type|content-transfer-encoding):.*(\r?\n[ \t].*)*\r?\n?",
            "",
            fields.get("headers", ""),
        )
        raw = headers.rstrip("\r\n") + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        raw += fields.get("text", "")
    try:
        recipients = json.loads(fields.get("envelope") or "{}").get("to") or []
    except (ValueError, AttributeError):
        recipients = []
    front = "".join(
        f"X-Original-To: {address}\r\n"
        for address in recipients[:5]
        if isinstance(address, str) and address.isprintable()
    )
    return front.encode() + raw.encode("utf-8", "surrogateescape")
