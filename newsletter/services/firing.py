"""Firing (the daemon's part of scheduling): a due schedule becomes a send, a schedule
whose time passed beyond the grace is marked missed, and a rule picks the oldest
sendable issue never sent.

Firing goes through the same gates as `newsletter send` (`plan_send`) and creates the send
in the same transaction that moves the schedule out of `scheduled`, guarded by the row:
two daemons racing, or a crash between the steps, still make exactly one send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, update

from newsletter.domain.issue import SENDABLE
from newsletter.domain.schedule import ScheduleState, misfired, next_fire, zone
from newsletter.errors import InputError
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import schedules
from newsletter.infra.workspace import Workspace
from newsletter.services.ledger import Ledger
from newsletter.services.library import Library
from newsletter.services.scheduling import ScheduleBook, ScheduleRecord
from newsletter.services.sending import plan_send


@dataclass(frozen=True)
class Fired:
    """What a firing did: a send to dispatch, or why not."""

    schedule: ScheduleRecord
    send_id: int | None
    outcome: str


def mark_missed(book: ScheduleBook, at: datetime, grace: timedelta) -> list[ScheduleRecord]:
    """Schedules whose time passed beyond the grace: never sent late. A rule moves on
    to its next firing."""
    missed = []
    for record in book.waiting(at - grace):
        if record.due_at is None or not misfired(record.due_at, at, grace):
            continue
        late = f"missed: due {record.due_at:%Y-%m-%d %H:%M} UTC, no daemon ran in time"
        with book.engine.begin() as connection:
            if record.cron:
                changed = book.change(
                    connection,
                    record.id,
                    only_from=ScheduleState.SCHEDULED,
                    due_at=next_fire(record.cron, zone(record.timezone), at),
                    outcome=late,
                )
            else:
                changed = book.change(
                    connection,
                    record.id,
                    only_from=ScheduleState.SCHEDULED,
                    state=ScheduleState.MISSED,
                    outcome=late,
                )
        if changed:
            missed.append(book.get(record.id))
    return missed


def fire(book: ScheduleBook, schedule_id: int, at: datetime) -> Fired | None:
    """Turn a due schedule into a send (None: not due, or fired or moved meanwhile)."""
    record = book.get(schedule_id)
    if record.state != ScheduleState.SCHEDULED or record.due_at is None:
        return None
    if record.due_at > at + timedelta(seconds=1):
        return None
    following = next_fire(record.cron, zone(record.timezone), at) if record.cron else None
    slug = record.issue_slug or next_ready(book.workspace, book.engine)
    if slug is None:
        outcome = "skipped: no ready issue that was never sent"
        return _settle(book, record, outcome, ScheduleState.SCHEDULED, following)
    try:
        plan = plan_send(
            book.workspace,
            book.engine,
            slug,
            topic=record.topic,
            transport=record.transport,
            again=record.again,
        )
    except InputError as exc:
        state = ScheduleState.SCHEDULED if record.cron else ScheduleState.FAILED
        return _settle(book, record, f"failed: {exc}", state, following)
    ledger = Ledger(book.engine)
    with book.engine.begin() as connection:
        if not _guard(connection, record):
            return None  # another daemon fired it, or it was moved or cancelled
        try:
            send_id = ledger.insert_send(
                connection,
                plan.build.rendered,
                plan.transport,
                plan.audience,
                again=record.again,
                snippets=plan.snippets,
            )
        except InputError as exc:  # sent meanwhile by hand
            book.change(
                connection,
                record.id,
                state=ScheduleState.SCHEDULED if record.cron else ScheduleState.FAILED,
                due_at=following,
                outcome=f"failed: {exc}",
            )
            return Fired(book.get(record.id), None, f"failed: {exc}")
        outcome = f"fired: {slug} as send #{send_id}"
        book.change(
            connection,
            record.id,
            state=ScheduleState.SCHEDULED if record.cron else ScheduleState.FIRED,
            due_at=following,
            send_id=send_id,
            outcome=outcome,
        )
    return Fired(book.get(record.id), send_id, outcome)


def _settle(
    book: ScheduleBook,
    record: ScheduleRecord,
    outcome: str,
    state: ScheduleState,
    following: datetime | None,
) -> Fired | None:
    with book.engine.begin() as connection:
        if not _guard(connection, record):
            return None
        book.change(connection, record.id, state=state, due_at=following, outcome=outcome)
    return Fired(book.get(record.id), None, outcome)


def _guard(connection: Connection, record: ScheduleRecord) -> bool:
    """scheduled -> firing, only if still scheduled for the same time: the row is the
    lock (the write lock on SQLite, the row lock on PostgreSQL) until commit."""
    return (
        connection.execute(
            update(schedules)
            .where(
                schedules.c.id == record.id,
                schedules.c.state == str(ScheduleState.SCHEDULED),
                schedules.c.due_at == record.due_at,
            )
            .values(state=str(ScheduleState.FIRING), updated_at=now())
        ).rowcount
        == 1
    )


def next_ready(workspace: Workspace, engine: Engine) -> str | None:
    """The oldest (by date) sendable issue (ready or published) never sent."""
    ledger = Ledger(engine)
    ready = sorted(
        (i for i in Library(workspace).issues() if i.meta.status in SENDABLE),
        key=lambda i: (i.meta.date, i.slug),
    )
    for issue in ready:
        if ledger.earlier_send(issue.slug) is None:
            return issue.slug
    return None
