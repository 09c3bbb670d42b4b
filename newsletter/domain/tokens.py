"""Signed link tokens: HMAC-SHA256 over purpose, subscriber id, send id and issue time.

A token is URL-safe base64 of a 17-byte body and a 16-byte (128-bit) truncated MAC:
44 characters. Several keys may verify (rotation); the first one signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

_BODY = struct.Struct(">cQI")  # purpose, subscriber id, send id (0 = none)
_ISSUED = struct.Struct(">I")  # seconds since the epoch
_SIGNED = struct.Struct(">cQII")  # both at once, for signing
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
_LINK = b"\0link\0"  # a tracked link's target is signed apart from tokens (never a purpose)
LINK_TAG_BYTES = 12
MAC_BYTES = 16
_SHA256_BLOCK = 64
VERSION = b"v1"


class Purpose(Enum):
    UNSUBSCRIBE = b"u"
    PREFERENCES = b"p"
    CONFIRM = b"c"
    BOUNCE = b"b"  # the envelope sender's VERP token: a bounce names its delivery
    CLICK = b"k"  # a tracked link's recipient part: who clicked, in which send


class InvalidToken(ValueError):
    """Forged, truncated, altered, expired or for another purpose: all look the same outside."""


@dataclass(frozen=True)
class Token:
    purpose: Purpose
    subscriber_id: int
    send_id: int | None
    issued_at: datetime


class Signer:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._macs = [_PrimedHmac(k.encode("utf-8")) for k in keys]
        self.key_count = len(keys)
        # Names the signing key (for rotation warnings) without revealing it.
        self.fingerprint = hashlib.sha256(b"signing key\0" + keys[0].encode()).hexdigest()[:16]

    def sign(
        self,
        purpose: Purpose,
        subscriber_id: int,
        send_id: int | None = None,
        issued_at: datetime | None = None,
    ) -> str:
        issued = int(issued_at.timestamp()) if issued_at else int(time.time())
        body = _SIGNED.pack(purpose.value, subscriber_id, send_id or 0, issued)
        return _b64(body + self._macs[0].tag(body))

    def link_tag(self, target: str) -> str:
        """Signs a tracked link's target: 16 URL-safe characters."""
        return _b64(self._macs[0].tag(_LINK + target.encode("utf-8"))[:LINK_TAG_BYTES])

    def verify_link(self, target: str, tag: str) -> bool:
        body = _LINK + target.encode("utf-8")
        return any(
            hmac.compare_digest(tag.encode(), _b64(key.tag(body)[:LINK_TAG_BYTES]).encode())
            for key in self._macs
        )

    def verify(
        self,
        token: str,
        purpose: Purpose,
        *,
        max_age: timedelta | None = None,
        now: datetime | None = None,
    ) -> Token:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidToken("not a token") from None
        if len(raw) != _BODY.size + _ISSUED.size + MAC_BYTES or _b64(raw) != token:
            raise InvalidToken("malformed")
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not any(hmac.compare_digest(mac, key.tag(body)) for key in self._macs):
            raise InvalidToken("bad signature")
        code, subscriber_id, send_id = _BODY.unpack(body[: _BODY.size])
        (issued,) = _ISSUED.unpack(body[_BODY.size :])
        if code != purpose.value:
            raise InvalidToken("wrong purpose")
        issued_at = datetime.fromtimestamp(issued, UTC)
        if max_age is not None and (now or datetime.now(UTC)) - issued_at > max_age:
            raise InvalidToken("expired")
        return Token(purpose, subscriber_id, send_id or None, issued_at)


class _PrimedHmac:
    """HMAC-SHA256 (RFC 2104) with both padded keys hashed once, keyed by VERSION.

    A token then costs two hash copies: about 0.5 us, against 1.3 us for `hmac.digest`,
    whose OpenSSL call sets the key up anew each time. Two tokens go into every message,
    so this is a large part of a send's own work. Tests hold it equal to `hmac`.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._inner.update(VERSION)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def tag(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_BYTES]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()
