"""Subscribers: statuses, the rules for moving between them, address normalization."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Statuses that mean "never mail again" unless the person asks to come back.
SUPPRESSED = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED})

# What feedback (a bounce, a complaint, an unsubscribe) never overrides: a status never
# gets weaker, and a complaint is the strongest of all.
NEVER_OVERRIDES: dict[Status, frozenset[Status]] = {
    Status.BOUNCED: frozenset({Status.BOUNCED, Status.COMPLAINED}),
    Status.COMPLAINED: frozenset({Status.COMPLAINED}),
    Status.UNSUBSCRIBED: SUPPRESSED,
}


class Source(StrEnum):
    """Where a change came from, for the consent record."""

    CLI = "cli"
    IMPORT = "import"
    WEB_FORM = "web-form"
    ONE_CLICK = "one-click"
    PREFERENCES = "preferences"
    MAILTO = "mailto"
    PROVIDER = "provider-event"


class InvalidAddress(ValueError):
    pass


@dataclass(frozen=True)
class Address:
    email: str  # as given, domain lowercased, Unicode normalized
    key: str  # case-insensitive identity


# A plain ASCII local part (RFC 5322 dot-atom) that email-validator always accepts unchanged.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


def normalize_address(raw: str) -> Address:
    """Syntax check only (no DNS). Internationalized addresses are accepted and normalized.

    email-validator decides everything. Its verdict on a domain is cached, because lists
    repeat a few domains many times and the domain check is most of its cost; an address
    whose local part is not a plain ASCII dot-atom is always validated whole.
    """
    candidate = raw.strip()
    if not candidate:
        raise InvalidAddress("empty address")
    local, at, domain = candidate.rpartition("@")
    if at and len(local) <= 64 and _DOT_ATOM.match(local):
        normalized_domain, error = _domain_verdict(domain)
        if error is not None:
            raise InvalidAddress(error)
        email = f"{local}@{normalized_domain}"
        if len(email) <= 254:
            return Address(email=email, key=email.casefold())
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return Address(email=result.normalized, key=result.normalized.casefold())


@lru_cache(maxsize=65536)
def _domain_verdict(domain: str) -> tuple[str, str | None]:
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain, None
    except EmailNotValidError as exc:
        return "", str(exc)


def erased_hash(key: str, salt: str) -> str:
    """What remains of an erased address: enough to suppress it, not to recover it."""
    return hmac.new(salt.encode(), key.encode("utf-8"), hashlib.sha256).hexdigest()


TOPIC = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
NAME_MAX = 200


def clean_name(name: str | None) -> str | None:
    """One line of visible text, at most 200 characters. A name never costs a subscriber
    (spreadsheets put line breaks in cells): line breaks and tabs become spaces, runs of
    white space fold, control characters (NUL included, which PostgreSQL cannot store),
    bidirectional overrides such as U+202E and zero-width characters are removed."""
    if name is None:
        return None
    if name.isascii() and name.isprintable():  # most names: only runs of spaces to fold
        cleaned = " ".join(name.split())[:NAME_MAX].rstrip()
        return cleaned or None
    kept = "".join(
        " " if c.isspace() else c
        for c in name
        if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf")
    )
    cleaned = " ".join(kept.split())[:NAME_MAX].rstrip()
    return cleaned or None


def clean_topics(topics: Iterable[str]) -> list[str]:
    """Topics are slugs (lowercase letters, digits, dashes): sorted, each once."""
    cleaned = {t.strip().lower() for t in topics if t.strip()}
    bad = sorted(t for t in cleaned if not TOPIC.match(t))
    if bad:
        raise ValueError(f"{bad[0]!r} is not a topic (lowercase letters, digits and dashes)")
    return sorted(cleaned)


def first_name_of(name: str | None) -> str | None:
    """The greeting's name: the first word of the full name, if there is one."""
    words = (name or "").split()
    return words[0] if words else None


def mask_email(email: str) -> str:
    """`ad***@example.com`: enough to recognise one's address, not to harvest it."""
    local, _, domain = email.rpartition("@")
    shown = local[:1] if len(local) <= 3 else local[:2]
    return f"{shown}***@{domain}"


@dataclass(frozen=True)
class SubscriberRecord:
    """A subscriber as services hand it to entry points."""

    id: int
    email: str | None
    name: str | None
    status: Status
    topics: list[str] = field(default_factory=list)
    attributes: dict[str, object] = field(default_factory=dict)
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    paused_until: datetime | None = None
    erased_at: datetime | None = None

    @property
    def first_name(self) -> str | None:
        return first_name_of(self.name)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "status": str(self.status),
            "topics": self.topics,
            "attributes": self.attributes,
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
            "unsubscribed_at": self.unsubscribed_at,
            "paused_until": self.paused_until,
            "erased_at": self.erased_at,
        }


@dataclass(frozen=True)
class EventRecord:
    at: datetime
    kind: str
    old_status: str | None
    new_status: str | None
    source: str
    detail: str | None
    ip: str | None
    user_agent: str | None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)
