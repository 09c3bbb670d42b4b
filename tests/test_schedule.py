"""Scheduling from the command line, and firing (in process: `daemon --once` and the
schedule book): refusals, moves, cancels, once-only firing, misfires, checks at firing
time, recurring rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from newsletter.errors import ExitStatus
from newsletter.infra.db.schema import schedules
from newsletter.services.firing import fire
from newsletter.services.ledger import Ledger
from newsletter.services.scheduling import ScheduleBook

ISSUE = "2026-12-welcome"
LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")


def make_due(sending, schedule_id: int, ago: timedelta = timedelta(seconds=5)) -> None:
    with sending.engine.begin() as connection:
        connection.execute(
            update(schedules)
            .where(schedules.c.id == schedule_id)
            .values(due_at=datetime.now(UTC) - ago)
        )


def schedule(cli, *args: str):
    result = cli("schedule", *args, "--yes", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_schedule_list_show_and_cancel(sending, cli):
    sending.add(2)
    made = schedule(cli, ISSUE, "--at", LATER, "--tz", "Europe/London")
    assert made["state"] == "scheduled" and made["timezone"] == "Europe/London"
    listed = json.loads(cli("schedule", "list", "--json").out)
    assert [s["id"] for s in listed] == [made["id"]]
    shown = cli("schedule", "show", str(made["id"]))
    assert "Europe/London" in shown.out and "cli " in shown.out
    assert cli("schedule", "cancel", ISSUE).code == 0
    assert json.loads(cli("schedule", "show", str(made["id"]), "--json").out)["state"] == (
        "cancelled"
    )
    assert cli("schedule", "cancel", str(made["id"])).code == ExitStatus.INPUT_ERROR


def test_send_at_is_schedule_at(sending, cli):
    sending.add(1)
    result = cli("send", ISSUE, "--at", LATER, "--yes", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["issue_slug"] == ISSUE
    assert Ledger(sending.engine).list() == []


def test_refusals_say_why_and_schedule_nothing(sending, cli):
    sending.add(1)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    cases = [
        (["--at", past], "is in the past"),
        (["--at", LATER, "--topic", "basic"], "unknown topic 'basic'"),
        (["--at", "2027-03-28 01:30", "--tz", "Europe/London"], "does not exist"),
        (["--at", LATER, "--tz", "Mars/Olympus"], "unknown time zone"),
    ]
    for extra, reason in cases:
        result = cli("schedule", ISSUE, *extra, "--yes")
        assert result.code == ExitStatus.INPUT_ERROR and reason in result.err, result.err
    sending.sample.snippet("how-microneedling-works", body="TK")
    checks = cli("schedule", ISSUE, "--at", LATER, "--yes")
    assert checks.code == ExitStatus.CHECKS_FAILED and "editing marker 'TK'" in checks.err
    sending.sample.snippet("how-microneedling-works", body="Fixed.")
    sending.sample.edit(f"issues/{ISSUE}.md", "status: ready", "status: draft")
    draft = cli("schedule", ISSUE, "--at", LATER, "--yes")
    assert draft.code == ExitStatus.INPUT_ERROR and "marked draft" in draft.err
    assert json.loads(cli("schedule", "list", "--json").out) == []


def test_an_issue_is_scheduled_once_and_replace_moves_it(sending, cli):
    sending.add(1)
    first = schedule(cli, ISSUE, "--at", LATER)
    again = cli("schedule", ISSUE, "--at", LATER, "--yes")
    assert again.code == ExitStatus.INPUT_ERROR and "already scheduled" in again.err
    later = (datetime.now(UTC) + timedelta(days=40)).strftime("%Y-%m-%d %H:%M")
    moved = schedule(cli, ISSUE, "--at", later, "--replace")
    assert moved["id"] == first["id"] and moved["due_at"] != first["due_at"]
    assert len(json.loads(cli("schedule", "list", "--json").out)) == 1


def test_an_issue_already_sent_is_refused_unless_again(sending, cli):
    sending.add(1)
    assert cli("send", ISSUE, "--yes").code == 0
    refused = cli("schedule", ISSUE, "--at", LATER, "--yes")
    assert refused.code == ExitStatus.INPUT_ERROR and "already sent" in refused.err
    assert schedule(cli, ISSUE, "--at", LATER, "--again")["again"] is True


def test_a_due_schedule_fires_once_even_when_fired_twice(sending, cli):
    sending.add(3)
    made = schedule(cli, ISSUE, "--at", LATER)
    make_due(sending, made["id"])
    book = ScheduleBook(sending.workspace, sending.engine, role="daemon")
    first = fire(book, made["id"], datetime.now(UTC))
    other = ScheduleBook(sending.workspace, sending.engine, role="daemon")
    second = fire(other, made["id"], datetime.now(UTC))
    assert first is not None and first.send_id is not None and second is None
    [send] = Ledger(sending.engine).list()
    assert send.id == first.send_id and send.total == 3
    assert book.get(made["id"]).state == "fired"


def test_daemon_once_fires_within_the_grace_and_marks_missed_beyond(sending, cli):
    sending.add(2)
    soon = schedule(cli, ISSUE, "--at", LATER)
    late = schedule(cli, "2027-01-evidence", "--at", LATER)
    make_due(sending, soon["id"], timedelta(minutes=30))
    make_due(sending, late["id"], timedelta(hours=3))
    result = cli("daemon", "--once")
    assert result.code == 0, result.err
    assert "fired schedule=" in result.out and "missed schedule=" in result.out
    book = ScheduleBook(sending.workspace, sending.engine)
    assert book.get(soon["id"]).state == "fired"
    assert book.get(late["id"]).state == "missed"
    [send] = Ledger(sending.engine).list()
    assert send.issue_slug == ISSUE and send.counts["sent"] == 2
    assert len(list((sending.outbox / f"send-{send.id}").glob("*.eml"))) == 2
    status = json.loads(cli("status", "--json").out)
    assert [m["id"] for m in status["missed"]] == [late["id"]]


def test_checks_failing_at_firing_time_fail_the_schedule_and_send_nothing(sending, cli):
    sending.add(1)
    made = schedule(cli, ISSUE, "--at", LATER)
    sending.sample.snippet("how-microneedling-works", body="TK")
    make_due(sending, made["id"])
    result = cli("daemon", "--once")
    assert result.code == 0
    assert "failed schedule=" in result.out and "editing marker" in result.out
    record = ScheduleBook(sending.workspace, sending.engine).get(made["id"])
    assert record.state == "failed" and "editing marker 'TK'" in (record.outcome or "")
    assert Ledger(sending.engine).list() == []


def test_a_recurring_rule_skips_when_nothing_is_ready_then_sends_the_oldest(sending, cli):
    sending.add(1)
    for slug in (ISSUE, "2027-01-evidence"):
        sending.sample.edit(f"issues/{slug}.md", "status: ready", "status: draft")
    rule = schedule(cli, "--cron", "0 9 * * MON", "--next-ready", "--tz", "Europe/London")
    make_due(sending, rule["id"])
    assert "skipped schedule=" in cli("daemon", "--once").out
    book = ScheduleBook(sending.workspace, sending.engine)
    after_skip = book.get(rule["id"])
    assert after_skip.state == "scheduled" and after_skip.due_at > datetime.now(UTC)
    assert "no ready issue" in (after_skip.outcome or "")
    sending.sample.edit(f"issues/{ISSUE}.md", "status: draft", "status: published")
    sending.sample.edit("issues/2027-01-evidence.md", "status: draft", "status: ready")
    make_due(sending, rule["id"])
    assert "fired schedule=" in cli("daemon", "--once").out
    [send] = Ledger(sending.engine).list()
    assert send.issue_slug == ISSUE  # the oldest by date; published is sendable like ready
    assert book.get(rule["id"]).state == "scheduled"  # a rule waits for its next firing


def test_a_recurring_rule_passes_over_an_issue_a_cancelled_send_reached(sending, cli):
    sending.add(2)
    sending.cancel_after_one(ISSUE)  # one reader has it: picking it again would resend
    rule = schedule(cli, "--cron", "0 9 * * MON", "--next-ready", "--tz", "Europe/London")
    make_due(sending, rule["id"])
    assert "fired schedule=" in cli("daemon", "--once").out
    newest = Ledger(sending.engine).list()[0]
    assert newest.issue_slug == "2027-01-evidence"
