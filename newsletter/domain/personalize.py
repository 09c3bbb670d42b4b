"""Render once, personalize by substitution.

An issue is rendered a single time into a `RenderedIssue` whose per-recipient values are
placeholders. A placeholder is a name between U+27E6 and U+27E7 (the white square brackets
⟦ ⟧). Content files may not contain those two characters, so a placeholder can never be
confused with content. They pass through Jinja and MJML untouched, attribute values
included (mjml-python escapes non-printable characters such as the private-use area there).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from newsletter.errors import InputError

OPEN = "\u27e6"  # ⟦
CLOSE = "\u27e7"  # ⟧
FIELDS = (
    "unsubscribe_url",
    "preferences_url",
    "confirm_url",
    "first_name",
    "email",
    "click_token",
)
# Only known names are placeholders; anything else between the brackets stays, and is caught.
PLACEHOLDER = re.compile(f"{OPEN}({'|'.join(FIELDS)})(?:\\|([^{OPEN}{CLOSE}]*))?{CLOSE}")


def placeholder(name: str, fallback: str = "") -> str:
    """The marker for a per-recipient value; `fallback` is used when the value is empty."""
    if name not in FIELDS:
        raise ValueError(f"unknown placeholder {name!r}; known: {', '.join(FIELDS)}")
    return f"{OPEN}{name}|{fallback}{CLOSE}" if fallback else f"{OPEN}{name}{CLOSE}"


def reject_reserved(text: str, file: str) -> None:
    """Content may not contain the placeholder delimiters."""
    for char in (OPEN, CLOSE):
        position = text.find(char)
        if position >= 0:
            line = text.count("\n", 0, position) + 1
            raise InputError(
                f"contains the reserved character U+{ord(char):04X}; remove it", file, line
            )


class _Template:
    """A string cut at its placeholders, filled by one join per recipient."""

    __slots__ = ("parts", "slots")

    def __init__(self, source: str) -> None:
        pieces = PLACEHOLDER.split(source)
        # split() yields: literal, name, fallback, literal, name, fallback, ..., literal
        self.parts: list[str] = []
        self.slots: list[tuple[int, str, str]] = []
        for index in range(0, len(pieces), 3):
            self.parts.append(pieces[index])
            if index + 1 < len(pieces):
                self.slots.append((len(self.parts), pieces[index + 1], pieces[index + 2] or ""))
                self.parts.append("")

    def names(self) -> set[str]:
        return {name for _, name, _ in self.slots}

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self.parts.copy()
        for index, name, fallback in self.slots:
            parts[index] = values.get(name) or fallback
        return "".join(parts)


def delivery_key(subscriber_id: int) -> str:
    """Names one subscriber's message within a stream (file name, Message-ID, custom_args)."""
    return f"sub-{subscriber_id}"


class Recipient(NamedTuple):
    """One addressee: the values for the placeholders, and what the message needs.

    A NamedTuple, not a frozen dataclass: a send makes one per recipient, and a frozen
    dataclass costs several times as much to create."""

    email: str
    first_name: str | None
    unsubscribe_url: str = ""
    preferences_url: str = ""
    confirm_url: str = ""
    name: str | None = None  # for the To: header
    key: str = ""  # names the delivery: message file, Message-ID, provider custom args
    subscriber_id: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # List-Unsubscribe and friends
    return_path: str = ""  # the envelope sender (VERP), when not the From address
    click_token: str = ""  # own click tracking: names subscriber and send in /c/ links


@dataclass(frozen=True)
class PersonalizedMessage:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class RenderedIssue:
    slug: str
    subject: str
    preheader: str
    html: str
    text: str
    content_hash: str
    _html: _Template = field(repr=False, compare=False)
    _text: _Template = field(repr=False, compare=False)

    @classmethod
    def create(cls, slug: str, subject: str, preheader: str, html: str, text: str) -> RenderedIssue:
        digest = hashlib.sha256()
        for part in (slug, subject, preheader, html, text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
        return cls(
            slug=slug,
            subject=subject,
            preheader=preheader,
            html=html,
            text=text,
            content_hash=digest.hexdigest(),
            _html=_Template(html),
            _text=_Template(text),
        )

    def placeholders(self) -> tuple[set[str], set[str]]:
        """Names used in (html, text)."""
        return self._html.names(), self._text.names()


@dataclass(frozen=True)
class SubstitutionForm:
    """The render with provider-side substitution keys in place of our placeholders.

    For providers that personalize themselves (SendGrid): one body for a whole batch, and
    per recipient only a small map of key -> value. HTML and text get separate keys, since
    a value is escaped for one and not for the other.
    """

    html: str
    text: str
    keys: dict[str, tuple[bool, str, str]]  # key -> (for html, placeholder name, fallback)

    def values(self, recipient: Recipient) -> dict[str, str]:
        raw = recipient_values(recipient)
        return {
            key: (_escape(raw[name] or fallback) if is_html else (raw[name] or fallback))
            for key, (is_html, name, fallback) in self.keys.items()
        }


def substitution_form(rendered: RenderedIssue, prefix: str = "-nlsub") -> SubstitutionForm:
    keys: dict[str, tuple[bool, str, str]] = {}
    by_slot: dict[tuple[bool, str, str], str] = {}

    def fill(template: _Template, is_html: bool) -> str:
        parts = template.parts.copy()
        for index, name, fallback in template.slots:
            slot = (is_html, name, fallback)
            if slot not in by_slot:
                by_slot[slot] = f"{prefix}{len(by_slot)}-"
                keys[by_slot[slot]] = slot
            parts[index] = by_slot[slot]
        return "".join(parts)

    return SubstitutionForm(fill(rendered._html, True), fill(rendered._text, False), keys)


_NEEDS_ESCAPE = re.compile("[&<>\"']").search


def _escape(value: str) -> str:
    """html.escape, skipped for the usual value that has nothing to escape (a link)."""
    return html.escape(value) if _NEEDS_ESCAPE(value) else value


def recipient_values(recipient: Recipient) -> dict[str, str]:
    return {
        "unsubscribe_url": recipient.unsubscribe_url,
        "preferences_url": recipient.preferences_url,
        "confirm_url": recipient.confirm_url,
        "first_name": (recipient.first_name or "").strip(),
        "email": recipient.email,
        "click_token": recipient.click_token,
    }


def personalize(rendered: RenderedIssue, recipient: Recipient) -> PersonalizedMessage:
    values = recipient_values(recipient)
    escaped = {key: html.escape(value) for key, value in values.items()}
    return PersonalizedMessage(
        subject=rendered.subject,
        html=rendered._html.fill(escaped),
        text=rendered._text.fill(values),
    )
