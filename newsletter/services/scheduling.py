"""The schedule of record: planned sends of one issue at one time, and recurring rules that
send the oldest ready issue never sent. Every change bumps a version in `meta`, so a daemon
notices another process's change by reading one row a second.

Firing a due schedule (the daemon's part) is services/firing.py.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from newsletter.domain.schedule import (
    ScheduleError,
    ScheduleState,
    next_fire,
    parse_at,
    zone,
)
from newsletter.errors import InputError
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import meta, schedules
from newsletter.infra.redaction import redact
from newsletter.infra.workspace import Workspace
from newsletter.services.claims import HOST
from newsletter.services.ledger import lock_issue
from newsletter.services.library import Library
from newsletter.services.sending import plan_send

VERSION_KEY = "schedules_version"


class ScheduleRefused(InputError):
    """A schedule that cannot be made: the reason, exit 2."""


@dataclass(frozen=True)
class ScheduleRecord:
    id: int
    issue_slug: str | None
    cron: str | None
    timezone: str
    due_at: datetime | None
    topic: str | None
    transport: str | None
    again: bool
    state: ScheduleState
    send_id: int | None
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    changed_by: str

    @property
    def what(self) -> str:
        return self.issue_slug or f"rule '{self.cron}': the oldest ready issue"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "state": str(self.state)}


def actor(role: str = "cli") -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{role} {user}@{HOST} pid {os.getpid()}"


class ScheduleBook:
    def __init__(self, workspace: Workspace, engine: Engine, role: str = "cli") -> None:
        self.workspace = workspace
        self.engine = engine
        self.reader = reading(engine)
        self.role = role

    # -- making and changing schedules ------------------------------------------------------

    def schedule_issue(
        self,
        issue: str,
        at: str,
        *,
        tz: str | None = None,
        topic: str | None = None,
        transport: str | None = None,
        again: bool = False,
        replace: bool = False,
    ) -> ScheduleRecord:
        """Refused (exit 2) like a send would be: in the past, failing checks, a draft,
        already sent, unknown topic; already scheduled unless `replace` (which moves it)."""
        zone_name = tz or self.workspace.settings.schedule.timezone
        try:
            due = parse_at(at, zone(zone_name))
        except ScheduleError as exc:
            raise ScheduleRefused(f"--at: {exc}") from None
        if due <= now():
            raise ScheduleRefused(f"--at: {at} ({zone_name}) is in the past")
        plan = plan_send(
            self.workspace, self.engine, issue, topic=topic, transport=transport, again=again
        )
        slug = plan.build.issue.slug
        values = {
            "due_at": due,
            "timezone": zone_name,
            "topic": topic,
            "transport": transport,
            "again": again,
        }
        with self.engine.begin() as connection:
            lock_issue(connection, slug)
            existing = connection.execute(
                select(schedules.c.id, schedules.c.due_at).where(
                    schedules.c.issue_slug == slug,
                    schedules.c.state == str(ScheduleState.SCHEDULED),
                )
            ).first()
            if existing is not None and not replace:
                raise ScheduleRefused(
                    f"{slug} is already scheduled (#{existing.id}, "
                    f"{utc(existing.due_at):%Y-%m-%d %H:%M} UTC); --replace moves it"
                )
            if existing is not None:
                schedule_id = existing.id
                self.change(connection, schedule_id, **values, outcome="moved")
            else:
                schedule_id = self._insert(connection, issue_slug=slug, **values)
        return self.get(schedule_id)

    def schedule_rule(
        self,
        cron: str,
        *,
        tz: str | None = None,
        topic: str | None = None,
        transport: str | None = None,
    ) -> ScheduleRecord:
        zone_name = tz or self.workspace.settings.schedule.timezone
        try:
            due = next_fire(cron, zone(zone_name), now())
        except ScheduleError as exc:
            raise ScheduleRefused(f"--cron: {exc}") from None
        if due is None:
            raise ScheduleRefused(f"--cron: '{cron}' never fires")
        with self.engine.begin() as connection:
            schedule_id = self._insert(
                connection,
                cron=cron,
                timezone=zone_name,
                due_at=due,
                topic=topic,
                transport=transport,
                again=False,
            )
        return self.get(schedule_id)

    def cancel(self, ref: str) -> ScheduleRecord:
        """By number, or by issue slug (its waiting schedule)."""
        record = self._find(ref)
        if record.state != ScheduleState.SCHEDULED:
            raise ScheduleRefused(f"schedule #{record.id} is {record.state}; nothing to cancel")
        with self.engine.begin() as connection:
            changed = self.change(
                connection,
                record.id,
                only_from=ScheduleState.SCHEDULED,
                state=ScheduleState.CANCELLED,
                outcome="cancelled",
            )
        if not changed:
            raise ScheduleRefused(f"schedule #{record.id} changed meanwhile; see schedule show")
        return self.get(record.id)

    # -- reading -----------------------------------------------------------------------------

    def get(self, schedule_id: int) -> ScheduleRecord:
        with self.reader.connect() as connection:
            row = connection.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
        if row is None:
            raise InputError(f"no schedule #{schedule_id}")
        return _record(row)

    def list(self, *, waiting_only: bool = False) -> list[ScheduleRecord]:
        query = select(schedules).order_by(schedules.c.due_at.is_(None), schedules.c.due_at)
        if waiting_only:
            query = query.where(schedules.c.state == str(ScheduleState.SCHEDULED))
        with self.reader.connect() as connection:
            return [_record(row) for row in connection.execute(query)]

    def waiting(self, until: datetime) -> list[ScheduleRecord]:
        """Schedules waiting to fire no later than `until`, soonest first."""
        query = (
            select(schedules)
            .where(
                schedules.c.state == str(ScheduleState.SCHEDULED),
                schedules.c.due_at <= until,
            )
            .order_by(schedules.c.due_at)
        )
        with self.reader.connect() as connection:
            return [_record(row) for row in connection.execute(query)]

    def count_waiting(self) -> int:
        with self.reader.connect() as connection:
            return connection.execute(
                select(func.count()).where(schedules.c.state == str(ScheduleState.SCHEDULED))
            ).scalar_one()

    def version(self) -> str:
        with self.reader.connect() as connection:
            found = connection.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY))
            return found.scalar() or "0"

    def _find(self, ref: str) -> ScheduleRecord:
        if ref.isdigit():
            return self.get(int(ref))
        slug = Library(self.workspace).load_issue(ref).slug
        with self.reader.connect() as connection:
            row = connection.execute(
                select(schedules)
                .where(schedules.c.issue_slug == slug)
                .order_by(schedules.c.state != str(ScheduleState.SCHEDULED), schedules.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            raise InputError(f"{slug} has no schedule")
        return _record(row)

    # -- writing -----------------------------------------------------------------------------

    def _insert(self, connection: Connection, **values: Any) -> int:
        at = now()
        schedule_id: int = connection.execute(
            insert(schedules)
            .values(
                **values,
                state=str(ScheduleState.SCHEDULED),
                created_at=at,
                updated_at=at,
                changed_by=actor(self.role),
            )
            .returning(schedules.c.id)
        ).scalar_one()
        _bump(connection)
        return schedule_id

    def change(
        self,
        connection: Connection,
        schedule_id: int,
        *,
        only_from: ScheduleState | None = None,
        **values: Any,
    ) -> bool:
        """Change one schedule in the caller's transaction (only from `only_from`, when
        given), signed by this process and seen by every daemon; True if it changed."""
        query = update(schedules).where(schedules.c.id == schedule_id)
        if only_from is not None:
            query = query.where(schedules.c.state == str(only_from))
        if "state" in values:
            values["state"] = str(values["state"])
        if values.get("outcome"):
            values["outcome"] = redact(values["outcome"])
        changed = connection.execute(
            query.values(**values, updated_at=now(), changed_by=actor(self.role))
        ).rowcount
        _bump(connection)
        return changed == 1


def _bump(connection: Connection) -> None:
    """Every change is seen by a daemon within a second: it polls this one row."""
    current = connection.execute(
        select(meta.c.value).where(meta.c.key == VERSION_KEY).with_for_update()
    ).scalar()
    if current is None:
        connection.execute(insert(meta).values(key=VERSION_KEY, value="1"))
    else:
        connection.execute(
            update(meta).where(meta.c.key == VERSION_KEY).values(value=str(int(current) + 1))
        )


def _record(row: Any) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        issue_slug=row.issue_slug,
        cron=row.cron,
        timezone=row.timezone,
        due_at=utc(row.due_at),
        topic=row.topic,
        transport=row.transport,
        again=bool(row.again),
        state=ScheduleState(row.state),
        send_id=row.send_id,
        outcome=row.outcome,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        updated_at=utc(row.updated_at),  # type: ignore[arg-type]
        changed_by=row.changed_by,
    )
