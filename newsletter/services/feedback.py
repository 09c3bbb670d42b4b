"""Provider feedback: SendGrid's signed Event Webhook, verified, stored once per event, and
applied to the list in one transaction per post.

Bounces, spam reports and unsubscribes change the subscriber's status (never back to
active, never weaker than a complaint), each change in the consent log with source
`provider-event` and the event id. Every event, including those for unknown or erased
subscribers and those that arrive out of order, is kept for the statistics.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from hashlib import sha256
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Engine, insert, select

from newsletter.domain.subscriber import SUPPRESSED, Source, Status
from newsletter.infra.db.schema import provider_events, subscribers
from newsletter.services.subscribers import Context, StatusChange, change_statuses_in, now

# What each kind of event never overrides: a complaint is the strongest suppression.
COMPLAINED_ONLY = frozenset({Status.COMPLAINED})
HARD = frozenset({Status.BOUNCED, Status.COMPLAINED})


class BadSignature(Exception):
    """Missing, malformed, wrong or stale: the post changes nothing (403)."""


@dataclass(frozen=True)
class Ingested:
    received: int
    stored: int  # new events (the rest were already stored: a retried post)
    changes: int  # subscribers whose status changed


class WebhookVerifier:
    """ECDSA P-256 / SHA-256 over the timestamp followed by the raw body, checked by the
    `sendgrid` package's own EventWebhook helper."""

    def __init__(self, public_key: str, max_age: timedelta) -> None:
        try:
            self.helper = EventWebhook(public_key.strip())
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ValueError(f"not a base64 DER public key ({type(exc).__name__})") from None
        self.max_age = max_age

    def verify(self, body: bytes, signature: str | None, timestamp: str | None) -> None:
        if not signature or not timestamp:
            raise BadSignature("signature or timestamp header missing")
        try:
            sent = datetime.fromtimestamp(int(timestamp), UTC)
            text = body.decode("utf-8")
            base64.b64decode(signature, validate=True)
        except (ValueError, OverflowError, binascii.Error):
            raise BadSignature("malformed signature, timestamp or body") from None
        if abs(now() - sent) > self.max_age:
            raise BadSignature("timestamp outside the allowed age")
        if not self.helper.verify_signature(text, signature, timestamp):
            raise BadSignature("signature does not match")


def effect(event: dict[str, Any]) -> tuple[Status, frozenset[Status]] | None:
    """The status an event leads to, and the statuses it never overrides."""
    kind = event.get("event")
    if kind == "bounce":
        return (Status.BOUNCED, HARD) if event.get("type", "bounce") == "bounce" else None
    if kind == "dropped":
        reason = str(event.get("reason", "")).lower()
        if "bounce" in reason:
            return Status.BOUNCED, HARD
        if "spam" in reason:
            return Status.COMPLAINED, COMPLAINED_ONLY
        if "unsubscribe" in reason:
            return Status.UNSUBSCRIBED, SUPPRESSED
        return None
    if kind == "spamreport":
        return Status.COMPLAINED, COMPLAINED_ONLY
    if kind in ("unsubscribe", "group_unsubscribe"):
        return Status.UNSUBSCRIBED, SUPPRESSED
    return None  # processed, delivered, deferred, open, click, group_resubscribe: recorded


def parse_events(body: bytes) -> list[dict[str, Any]]:
    try:
        events = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("the body is not a JSON array of events")
    return events


def ingest(engine: Engine, events: Sequence[dict[str, Any]]) -> Ingested:
    """Store each event once and apply the new ones, all in one transaction."""
    with _without_cycle_collection():
        return _ingest(engine, events)


def ingest_body(engine: Engine, body: bytes) -> Ingested:
    """A verified post's raw body: parsed and ingested (ValueError: not an event array)."""
    with _without_cycle_collection():
        return _ingest(engine, parse_events(body))


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """A 10,000-event post makes some 300,000 short-lived objects, none in reference
    cycles; the cycle collector would walk every live object several times over for
    nothing (a fifth of the post's time). Reference counting still frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ingest(engine: Engine, events: Sequence[dict[str, Any]]) -> Ingested:
    received_at = now()
    rows = [row_of(event, received_at) for event in events]
    by_id = {row["event_id"]: (row, event) for row, event in zip(rows, events, strict=True)}
    with engine.begin() as connection:
        known: set[str] = set()
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            known.update(
                connection.execute(
                    select(provider_events.c.event_id).where(
                        provider_events.c.event_id.in_(ids[start : start + 500])
                    )
                ).scalars()
            )
        fresh = [(row, event) for key, (row, event) in by_id.items() if key not in known]
        unknown = {
            row["email"].lower()
            for row, event in fresh
            if row["subscriber_id"] is None and row["email"] and effect(event)
        }
        found = _by_address(connection, unknown)
        for row, _ in fresh:
            if row["subscriber_id"] is None and row["email"]:
                row["subscriber_id"] = found.get(row["email"].lower())
        if fresh:
            connection.execute(insert(provider_events), [row for row, _ in fresh])
        wanted = []
        for row, event in fresh:
            result = effect(event)
            if result is None or row["subscriber_id"] is None:
                continue
            status, unless = result
            context = Context(Source.PROVIDER, f"sendgrid {row['kind']} {row['event_id']}")
            wanted.append(StatusChange(row["subscriber_id"], status, context, unless))
        changes = change_statuses_in(connection, wanted) if wanted else 0
    return Ingested(len(events), len(fresh), changes)


def row_of(event: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    get = event.get
    event_id = get("sg_event_id")
    if not event_id:  # none given: the event's own content names it
        event_id = "sha256:" + sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:40]
    detail = get("reason") or get("type") or get("url") or get("status")
    if get("event") == "bounce":  # the type first: statistics tell bounces from blocks by it
        detail = f"{get('type') or 'bounce'}: {get('reason')}" if get("reason") else get("type")
    email = get("email")
    return {
        "provider": "sendgrid",
        "event_id": str(event_id)[:100],
        "kind": str(get("event") or "unknown")[:32],
        "email": str(email)[:320] if email else None,
        "subscriber_id": _int(get("subscriber_id")),
        "send_id": _send_of(get("stream")),
        "occurred_at": _moment(stamp) if isinstance(stamp := get("timestamp"), int | str) else None,
        "received_at": received_at,
        "detail": str(detail)[:1000] if detail else None,
        "machine": bool(get("sg_machine_open")),
    }


@lru_cache(maxsize=4096)  # a post's events share a few hundred distinct seconds
def _moment(stamp: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(stamp), UTC) if stamp is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _send_of(stream: Any) -> int | None:
    """Our custom arg `stream` is `send-N`."""
    if isinstance(stream, str) and stream.startswith("send-"):
        return _int(stream[5:])
    return None


def _by_address(connection: Any, addresses: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    listed = sorted(addresses)
    for start in range(0, len(listed), 500):
        for subscriber_id, key in connection.execute(
            select(subscribers.c.id, subscribers.c.email_key).where(
                subscribers.c.email_key.in_(listed[start : start + 500])
            )
        ):
            found[key] = subscriber_id
    return found
