"""One redaction step for everything that leaves the process or is stored: error messages,
log lines, stored reasons and JSON output. It removes the values of every configured secret
(they are read from the environment only) and the password part of any URL.
"""

from __future__ import annotations

import os
import re
from typing import Any

SECRET_VARIABLES = (
    "NEWSLETTER_SECRET_KEY",
    "SENDGRID_API_KEY",
    "NEWSLETTER_SMTP__PASSWORD",
    "NEWSLETTER_WEBHOOKS__INBOUND_SECRET",
)
URL_VARIABLES = ("NEWSLETTER_DATABASE_URL",)
MASK = "[redacted]"
# user:password@ after a scheme's // (also in a malformed URL such as "pg//u:pw@host").
_URL_PASSWORD = re.compile(r"(//[^\s:/@]*):([^\s@]+)@")
_cache: tuple[tuple[str | None, ...], tuple[str, ...]] | None = None


def _secrets() -> tuple[str, ...]:
    """The secret values now configured, longest first (cached while the environment
    holds the same ones)."""
    global _cache
    raw = tuple(os.environ.get(name) for name in SECRET_VARIABLES + URL_VARIABLES)
    if _cache is not None and _cache[0] == raw:
        return _cache[1]
    values: set[str] = set()
    for name, value in zip(SECRET_VARIABLES, raw, strict=False):
        if not value:
            continue
        parts = value.split(",") if name == "NEWSLETTER_SECRET_KEY" else [value]
        values.update(part.strip() for part in parts)
    for value in raw[len(SECRET_VARIABLES) :]:
        if value:
            values.update(m.group(2) for m in _URL_PASSWORD.finditer(value))
    found = tuple(sorted((v for v in values if len(v) >= 4), key=len, reverse=True))
    _cache = (raw, found)
    return found


def redact(text: str) -> str:
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:
        text = _URL_PASSWORD.sub(r"\1:***@", text)
    return text


def redact_data(value: Any) -> Any:
    """The same, through dicts, lists and tuples (JSON output)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value
