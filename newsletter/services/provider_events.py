"""The `provider_events` table as every feedback path uses it (the Event Webhook, returned
mail, suppression sync, tracked clicks): which events are stored already, who an address
is, a row with its defaults, and a provider's unix time as a UTC moment."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from newsletter.infra.db.schema import provider_events, subscribers

BATCH = 500  # values per IN (...): well under every database's parameter limit
T = TypeVar("T")


def batches(values: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def known_event_ids(connection: Connection, event_ids: Iterable[str]) -> set[str]:
    """The ones already stored: a retried post, a second sync."""
    known: set[str] = set()
    for chunk in batches(list(event_ids)):
        known.update(
            connection.execute(
                select(provider_events.c.event_id).where(provider_events.c.event_id.in_(chunk))
            ).scalars()
        )
    return known


def subscriber_ids_by_key(connection: Connection, keys: Iterable[str]) -> dict[str, int]:
    """Subscriber ids by `email_key` (erased subscribers have none: not on our list)."""
    found: dict[str, int] = {}
    for chunk in batches(sorted(keys)):
        for subscriber_id, key in connection.execute(
            select(subscribers.c.id, subscribers.c.email_key).where(
                subscribers.c.email_key.in_(chunk)
            )
        ):
            found[key] = subscriber_id
    return found


def event_row(
    provider: str,
    event_id: str,
    kind: str,
    received_at: datetime,
    *,
    email: str | None = None,
    subscriber_id: int | None = None,
    send_id: int | None = None,
    occurred_at: datetime | None = None,
    detail: str | None = None,
    machine: bool = False,
) -> dict[str, Any]:
    return {
        "provider": provider,
        "event_id": event_id[:100],
        "kind": kind[:32],
        "email": email[:320] if email else None,
        "subscriber_id": subscriber_id,
        "send_id": send_id,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "detail": detail[:1000] if detail else None,
        "machine": machine,
    }


@lru_cache(maxsize=4096)  # a webhook post's events share a few hundred distinct seconds
def moment(stamp: int | str | float | None) -> datetime | None:
    """A provider's unix time as a UTC moment; None when there is none or it is not one."""
    try:
        return datetime.fromtimestamp(int(stamp), UTC) if stamp is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None
