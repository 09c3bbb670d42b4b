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
from hashlib import sha256
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import ColumnElement, Engine, and_, insert, or_

from newsletter.domain.subscriber import NEVER_OVERRIDES, Source, Status
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import provider_events
from newsletter.services.consent_log import StatusChange, change_statuses_in
from newsletter.services.provider_events import known_event_ids, moment, subscriber_ids_by_key
from newsletter.services.subscribers import Context

# A bounce's stored detail leads with its type ("bounce: 550 5.1.1 ...", "blocked: ..."):
# statistics tell real bounces from blocks by it (see `is_hard_bounce`).
HARD_BOUNCE = "bounce"


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


def effect(event: dict[str, Any]) -> Status | None:
    """The status an event leads to (what it never overrides: `NEVER_OVERRIDES`)."""
    kind = event.get("event")
    if kind == "bounce":
        return Status.BOUNCED if event.get("type", HARD_BOUNCE) == HARD_BOUNCE else None
    if kind == "dropped":
        reason = str(event.get("reason", "")).lower()
        if "bounce" in reason:
            return Status.BOUNCED
        if "spam" in reason:
            return Status.COMPLAINED
        if "unsubscribe" in reason:
            return Status.UNSUBSCRIBED
        return None
    if kind == "spamreport":
        return Status.COMPLAINED
    if kind in ("unsubscribe", "group_unsubscribe"):
        return Status.UNSUBSCRIBED
    return None  # processed, delivered, deferred, open, click, group_resubscribe: recorded


def is_hard_bounce(events: Any) -> ColumnElement[bool]:
    """SQL: a stored provider event that made an address bounced (a bounce of type
    bounce, a drop for a bounced address, or a permanent failure that came back by mail)."""
    return or_(
        and_(
            events.kind == "bounce",
            or_(events.detail == HARD_BOUNCE, events.detail.like(f"{HARD_BOUNCE}: %")),
        ),
        and_(events.kind == "dropped", events.detail.ilike("%bounce%")),
        and_(events.kind == "bounce", events.provider == "mail"),  # a 5.x.x DSN
    )


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
    by_id = {}
    for event in events:
        row = row_of(event, received_at)
        by_id[row["event_id"]] = (row, effect(event))
    with engine.begin() as connection:
        known = known_event_ids(connection, by_id)
        fresh = [(row, result) for key, (row, result) in by_id.items() if key not in known]
        unknown = {
            row["email"].lower()
            for row, result in fresh
            if result and row["subscriber_id"] is None and row["email"]
        }
        found = subscriber_ids_by_key(connection, unknown) if unknown else {}
        wanted = []
        for row, result in fresh:
            if row["subscriber_id"] is None and row["email"] and found:
                row["subscriber_id"] = found.get(row["email"].lower())
            if result is not None and row["subscriber_id"] is not None:
                context = Context(Source.PROVIDER, f"sendgrid {row['kind']} {row['event_id']}")
                change = StatusChange(
                    row["subscriber_id"], result, context, NEVER_OVERRIDES[result]
                )
                wanted.append(change)
        if fresh:
            connection.execute(insert(provider_events), [row for row, _ in fresh])
        changes = change_statuses_in(connection, wanted) if wanted else 0
    return Ingested(len(events), len(fresh), changes)


def row_of(event: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    get = event.get
    event_id = get("sg_event_id")
    if not event_id:  # none given: the event's own content names it
        event_id = "sha256:" + sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:40]
    detail = get("reason") or get("type") or get("url") or get("status")
    if get("event") == "bounce":  # the type first (see HARD_BOUNCE)
        detail = f"{get('type') or HARD_BOUNCE}: {get('reason')}" if get("reason") else get("type")
    email = get("email")
    return {
        "provider": "sendgrid",
        "event_id": str(event_id)[:100],
        "kind": str(get("event") or "unknown")[:32],
        "email": str(email)[:320] if email else None,
        "subscriber_id": _int(get("subscriber_id")),
        "send_id": _send_of(get("stream")),
        "occurred_at": moment(stamp) if isinstance(stamp := get("timestamp"), int | str) else None,
        "received_at": received_at,
        "detail": str(detail)[:1000] if detail else None,
        "machine": bool(get("sg_machine_open")),
    }


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
