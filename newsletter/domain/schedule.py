"""Schedules as values: their states, the time an editor means by "2027-01-07 09:00" in a
zone, and when a recurring rule fires next (APScheduler's CronTrigger: zones and DST).

Pure: no clock is read here; callers pass `now`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger


class ScheduleState(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time (a rule stays here between firings)
    FIRING = "firing"  # being turned into a send, inside one transaction
    FIRED = "fired"  # made its send
    SKIPPED = "skipped"  # a rule found nothing ready (the rule itself stays scheduled)
    MISSED = "missed"  # its time passed beyond the grace while no daemon ran
    FAILED = "failed"  # the issue failed its checks at firing time: nothing was sent
    CANCELLED = "cancelled"


WAITING = frozenset({ScheduleState.SCHEDULED})


class ScheduleError(ValueError):
    """An editor's time, zone or rule that cannot be used; the message says why."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (use names like Europe/London)") from None


def parse_at(text: str, tz: ZoneInfo) -> datetime:
    """A wall-clock time in `tz` (or with an explicit UTC offset) as an aware UTC datetime.

    A time the clocks skip (spring forward) is refused; a time that happens twice (autumn)
    means its first occurrence, unless an offset says which."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise ScheduleError(
            f"cannot read the time {text!r}: write it as YYYY-MM-DD HH:MM"
        ) from None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    local = parsed.replace(tzinfo=tz)
    back = local.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != parsed:
        raise ScheduleError(
            f"{parsed:%Y-%m-%d %H:%M} does not exist in {tz.key}: the clocks go forward "
            "then; pick another time"
        )
    return local.astimezone(UTC)  # fold=0: the first of two occurrences


def is_ambiguous(moment: datetime, tz: ZoneInfo) -> bool:
    local = moment.astimezone(tz).replace(tzinfo=None)
    first = local.replace(tzinfo=tz, fold=0).utcoffset()
    second = local.replace(tzinfo=tz, fold=1).utcoffset()
    return first != second


def cron_trigger(line: str, tz: ZoneInfo) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(line, timezone=tz)
    except ValueError as exc:
        raise ScheduleError(f"cannot read the cron line {line!r}: {exc}") from None


def next_fire(line: str, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The rule's first firing strictly after `after`, in UTC."""
    trigger = cron_trigger(line, tz)
    found = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return None if found is None else found.astimezone(UTC)


def misfired(due: datetime, now: datetime, grace: timedelta) -> bool:
    """Too late to send: a daemon that was down for longer than the grace must not send
    an issue days late."""
    return now - due > grace
