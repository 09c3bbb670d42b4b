"""Per-recipient list headers (RFC 2369, RFC 8058, RFC 2919) and the links they carry."""

from __future__ import annotations

from dataclasses import dataclass
from email.header import Header
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from newsletter.domain.tokens import Purpose, Signer


@dataclass(frozen=True)
class ListIdentity:
    name: str  # shown in List-Id
    list_id: str  # a domain-like id, e.g. follicle-notes.news.example.com
    base_url: str  # https://host[/prefix], without a trailing slash
    unsubscribe_mailbox: str | None  # address that takes unsubscribe-TOKEN subjects
    bounce_domain: str | None = None  # VERP: envelope senders bounces+TOKEN@this


class RecipientLinks(NamedTuple):  # one per recipient: cheap to make
    unsubscribe_url: str
    preferences_url: str
    unsubscribe_token: str
    headers: dict[str, str]


def default_list_id(name: str, base_url: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    label = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "newsletter"
    return f"{label}.{host}"


def recipient_links(
    identity: ListIdentity, signer: Signer, subscriber_id: int, send_id: int | None = None
) -> RecipientLinks:
    """The links and headers for one recipient; the same URLs fill the body's placeholders."""
    unsubscribe = signer.sign(Purpose.UNSUBSCRIBE, subscriber_id, send_id)
    preferences = signer.sign(Purpose.PREFERENCES, subscriber_id, send_id)
    unsubscribe_url = f"{identity.base_url}/u/{unsubscribe}"
    targets = [f"<{unsubscribe_url}>"]
    if identity.unsubscribe_mailbox:
        subject = quote(f"unsubscribe-{unsubscribe}")
        targets.append(f"<mailto:{identity.unsubscribe_mailbox}?subject={subject}>")
    headers = {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{_phrase(identity.name)} <{identity.list_id}>",
    }
    return RecipientLinks(
        unsubscribe_url=unsubscribe_url,
        preferences_url=f"{identity.base_url}/preferences/{preferences}",
        unsubscribe_token=unsubscribe,
        headers=headers,
    )


@lru_cache(maxsize=64)  # the list's name, asked for once per recipient
def _phrase(name: str) -> str:
    """A display name safe in a header: no CR/LF, quoted when it has specials, RFC 2047
    encoded when it is not ASCII (so the whole header value stays ASCII)."""
    clean = " ".join(name.split())
    if not clean.isascii():
        return Header(clean, "utf-8", maxlinelen=998).encode()
    if any(c in clean for c in '()<>[]:;@\\,."'):
        return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return clean
