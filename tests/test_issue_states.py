"""`issues list`: each issue's file status, checks, and whether it is scheduled or sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")


def test_issues_list_shows_sent_scheduled_and_broken_issues(sending, cli, sample):
    sending.add(3)
    _, record = sending.run("outbox", issue="2026-12-welcome")
    made = cli("schedule", "2027-01-evidence", "--at", LATER, "--yes", "--json")
    assert made.code == 0, made.err
    sample.issue("2027-02-broken", ["no-such-snippet"])
    result = cli("issues", "list", "--json")
    assert result.code == 0, result.err
    states = {s["slug"]: s for s in json.loads(result.out)}
    welcome = states["2026-12-welcome"]
    assert (welcome["send_id"], welcome["sent"], welcome["check"]) == (record.id, 3, "ok")
    evidence = states["2027-01-evidence"]
    assert evidence["send_id"] is None and evidence["scheduled_at"].startswith(LATER[:10])
    assert evidence["schedule_id"] == json.loads(made.out)["id"]
    broken = states["2027-02-broken"]
    assert broken["check"] == "errors" and "no-such-snippet" in broken["problem"]
    table = cli("issues", "list").out
    assert f"sent #{record.id}" in table and "scheduled " in table and "never sent" in table
