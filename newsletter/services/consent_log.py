"""The consent log (`subscriber_events`): writing an event, reading a subscriber's events,
and the status changes that each write one.

Every change of status appends a row to `subscriber_events` in the same transaction, so the
event log is the consent record. Status changes lock the row first (FOR UPDATE on
PostgreSQL, BEGIN IMMEDIATE on SQLite): concurrent one-click POSTs record one event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from newsletter.domain.subscriber import SUPPRESSED, EventRecord, Status
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.schema import subscriber_events, subscribers

if TYPE_CHECKING:  # subscribers imports this module; Context is only a type here
    from newsletter.services.subscribers import Context


def record_event(
    connection: Connection,
    subscriber_id: int,
    kind: str,
    context: Context,
    old: Status | None,
    new: Status | None,
    at: datetime,
) -> None:
    connection.execute(
        insert(subscriber_events).values(**event_values(subscriber_id, kind, context, old, new, at))
    )


def event_values(
    subscriber_id: int,
    kind: str,
    context: Context,
    old: Status | None,
    new: Status | None,
    at: datetime,
) -> dict[str, Any]:
    """One line of the consent log."""
    return {
        "subscriber_id": subscriber_id,
        "at": at,
        "kind": kind,
        "old_status": old and str(old),
        "new_status": new and str(new),
        "source": str(context.source),
        "detail": context.detail,
        "ip": context.ip,
        "user_agent": context.user_agent[:500] if context.user_agent else None,
    }


def events_of(connection: Connection, subscriber_id: int) -> list[EventRecord]:
    """A subscriber's consent log, oldest first."""
    query = (
        select(subscriber_events)
        .where(subscriber_events.c.subscriber_id == subscriber_id)
        .order_by(subscriber_events.c.id)
    )
    return [
        EventRecord(
            at=utc(row.at),  # type: ignore[arg-type]
            kind=row.kind,
            old_status=row.old_status,
            new_status=row.new_status,
            source=row.source,
            detail=row.detail,
            ip=row.ip,
            user_agent=row.user_agent,
        )
        for row in connection.execute(query)
    ]


def timestamps_for(status: Status, at: datetime) -> dict[str, datetime]:
    if status == Status.ACTIVE:
        return {"confirmed_at": at}
    if status in SUPPRESSED:
        return {"unsubscribed_at": at}
    return {}


def change_status_in(
    connection: Connection,
    subscriber_id: int,
    new: Status,
    context: Context,
    *,
    unless: frozenset[Status] = frozenset(),
) -> bool:
    """`SubscriberStore.change_status` inside a caller's transaction. False when nothing
    changed: already so, a status in `unless` (never weaken a complaint), erased, or
    nobody there."""
    return change_statuses_in(connection, [StatusChange(subscriber_id, new, context, unless)]) > 0


@dataclass(frozen=True)
class StatusChange:
    subscriber_id: int
    new: Status
    context: Context
    unless: frozenset[Status] = frozenset()


def change_statuses_in(connection: Connection, changes: Sequence[StatusChange]) -> int:
    """Many `change_status_in` calls at once, applied in their order with the same rules:
    one read of the rows, one UPDATE per new status and one INSERT into the consent log.
    A webhook post of 10,000 events pays for three statements, not three per change.
    Returns how many changes took effect."""
    ids = sorted({change.subscriber_id for change in changes})
    current: dict[int, Status] = {}
    for start in range(0, len(ids), 500):
        rows = connection.execute(
            select(subscribers.c.id, subscribers.c.status, subscribers.c.erased_at)
            .where(subscribers.c.id.in_(ids[start : start + 500]))
            .with_for_update()
        )
        current.update({row.id: Status(row.status) for row in rows if row.erased_at is None})
    at = now()
    final: dict[int, Status] = {}
    log: list[dict[str, Any]] = []
    for change in changes:
        old = current.get(change.subscriber_id)
        if old is None or old == change.new or old in change.unless:
            continue
        current[change.subscriber_id] = final[change.subscriber_id] = change.new
        context = change.context
        log.append(event_values(change.subscriber_id, "status", context, old, change.new, at))
    by_status: dict[Status, list[int]] = {}
    for subscriber_id, status in final.items():
        by_status.setdefault(status, []).append(subscriber_id)
    for status, members in by_status.items():
        for start in range(0, len(members), 500):
            connection.execute(
                update(subscribers)
                .where(subscribers.c.id.in_(members[start : start + 500]))
                .values(status=str(status), **timestamps_for(status, at))
            )
    if log:
        connection.execute(insert(subscriber_events), log)
    return len(log)
