"""Times as editors write them, and recurring rules across daylight-saving changes
(pure functions: no clock, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.domain.schedule import (
    ScheduleError,
    is_ambiguous,
    misfired,
    next_fire,
    parse_at,
    zone,
)

LONDON = zone("Europe/London")


def test_a_wall_clock_time_means_that_time_in_its_zone():
    assert parse_at("2027-01-07 09:00", LONDON) == datetime(2027, 1, 7, 9, 0, tzinfo=UTC)
    assert parse_at("2027-07-07 09:00", LONDON) == datetime(2027, 7, 7, 8, 0, tzinfo=UTC)
    assert parse_at("2027-07-07T09:00+02:00", LONDON) == datetime(2027, 7, 7, 7, tzinfo=UTC)


def test_a_time_the_clocks_skip_is_refused():
    # 2027-03-28: at 01:00 GMT the clocks go to 02:00 BST; 01:30 never happens.
    with pytest.raises(ScheduleError, match="does not exist in Europe/London"):
        parse_at("2027-03-28 01:30", LONDON)


def test_a_time_that_happens_twice_means_the_first():
    # 2027-10-31: at 02:00 BST the clocks go back to 01:00 GMT; 01:30 happens twice.
    first = parse_at("2027-10-31 01:30", LONDON)
    assert first == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 01:30 BST
    assert is_ambiguous(first, LONDON)
    assert parse_at("2027-10-31 01:30+00:00", LONDON) == first + timedelta(hours=1)
    assert not is_ambiguous(parse_at("2027-10-30 01:30", LONDON), LONDON)


def test_a_weekly_nine_oclock_rule_stays_at_nine_in_london_across_both_changes():
    rule = "0 9 * * MON"
    fired = []
    at = datetime(2027, 3, 15, tzinfo=UTC)
    for _ in range(3):
        at = next_fire(rule, LONDON, at)
        fired.append(at)
    # 22 March GMT, then 29 March BST (the change was on the 28th).
    assert fired == [
        datetime(2027, 3, 15, 9, tzinfo=UTC),
        datetime(2027, 3, 22, 9, tzinfo=UTC),
        datetime(2027, 3, 29, 8, tzinfo=UTC),
    ]
    autumn = next_fire(rule, LONDON, datetime(2027, 10, 26, tzinfo=UTC))
    after = next_fire(rule, LONDON, autumn)
    assert autumn == datetime(2027, 11, 1, 9, tzinfo=UTC)  # GMT again after 31 October
    assert next_fire(rule, LONDON, datetime(2027, 10, 19, tzinfo=UTC)) == datetime(
        2027, 10, 25, 8, tzinfo=UTC
    )
    assert after == datetime(2027, 11, 8, 9, tzinfo=UTC)
    for moment in [*fired, autumn, after]:
        assert moment.astimezone(LONDON).hour == 9


def test_bad_zones_times_and_rules_say_what_is_wrong():
    with pytest.raises(ScheduleError, match="unknown time zone 'Europe/Lundon'"):
        zone("Europe/Lundon")
    with pytest.raises(ScheduleError, match="YYYY-MM-DD HH:MM"):
        parse_at("next tuesday", LONDON)
    with pytest.raises(ScheduleError, match="cron line"):
        next_fire("0 9 * *", LONDON, datetime(2027, 1, 1, tzinfo=UTC))


def test_misfire_is_judged_against_the_grace():
    due = datetime(2027, 1, 7, 9, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert not misfired(due, due + timedelta(minutes=59), hour)
    assert misfired(due, due + timedelta(minutes=61), hour)
