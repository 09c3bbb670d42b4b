"""Reuse tracking on SQLite and PostgreSQL: each send records the snippets it carried (id,
hash of the file's text), `snippets list` learns when each last went out, and a check warns
before an issue repeats a snippet most of its audience already got."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from newsletter.domain.findings import Severity
from newsletter.domain.issue import Issue, parse_issue
from newsletter.domain.subscriber import Source
from newsletter.infra.db.schema import schedules, send_snippets
from newsletter.services.audience import Audience
from newsletter.services.firing import fire
from newsletter.services.ledger import Ledger
from newsletter.services.library import Library
from newsletter.services.reuse import (
    listed_snippets,
    reuse_findings,
    snippet_rows,
    snippet_usage,
)
from newsletter.services.scheduling import ScheduleBook
from newsletter.services.sending import create_send, plan_send
from newsletter.services.subscribers import Context

WELCOME = "2026-12-welcome"


def file_hash(sending, snippet_id: str) -> str:
    path = sending.sample.root / f"issues/snippets/{snippet_id}.md"
    return hashlib.sha256(path.read_text(encoding="utf-8").encode()).hexdigest()


def send(sending, slug: str) -> int:
    """Send an issue to everyone active now, through the ledger and the outbox."""
    return sending.run("outbox", issue=slug, batch_size=50)[1].id


def recorded(sending, send_id: int) -> list[tuple[str, str, int]]:
    with sending.engine.connect() as connection:
        rows = connection.execute(
            select(
                send_snippets.c.snippet_id, send_snippets.c.content_hash, send_snippets.c.position
            )
            .where(send_snippets.c.send_id == send_id)
            .order_by(send_snippets.c.position)
        ).all()
    return [tuple(row) for row in rows]


def compose_issue(sending, slug: str) -> Issue:
    return Library(sending.workspace).compose(slug)


def check(sending, slug: str, topic: str | None = None):
    issue = compose_issue(sending, slug)
    return reuse_findings(sending.workspace, sending.engine, issue, Audience(topic))


def library(sending) -> None:
    for name in ("alpha", "beta", "gamma"):
        sending.sample.snippet(name, body=f"The {name} snippet.", title=f"About {name}")
    sending.sample.issue("2027-02-a", ["alpha"])
    sending.sample.issue("2027-03-b", ["beta"])
    sending.sample.issue("2027-04-c", ["alpha", "beta", "gamma"])


# -- the record ---------------------------------------------------------------------------


def test_a_send_records_each_snippet_it_carried_with_the_hash_of_its_file(sending):
    sending.add(2)
    ids = Library(sending.workspace).load_issue(WELCOME).meta.snippets
    before = {sid: file_hash(sending, sid) for sid in ids}
    send_id = send(sending, WELCOME)
    assert recorded(sending, send_id) == [(sid, before[sid], i) for i, sid in enumerate(ids)]
    sending.sample.edit(
        "issues/snippets/how-microneedling-works.md", "---\n", "---\n# edited later\n"
    )
    assert file_hash(sending, "how-microneedling-works") != before["how-microneedling-works"]
    assert recorded(sending, send_id)[0][1] == before["how-microneedling-works"]  # as sent


def test_a_fired_schedule_records_its_snippets_too(sending):
    sending.add(2)
    book = ScheduleBook(sending.workspace, sending.engine, role="daemon")
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    made = book.schedule_issue(WELCOME, later, tz="UTC")
    with sending.engine.begin() as connection:
        connection.execute(
            update(schedules)
            .where(schedules.c.id == made.id)
            .values(due_at=datetime.now(UTC) - timedelta(seconds=5))
        )
    fired = fire(book, made.id, datetime.now(UTC))
    assert fired is not None and fired.send_id is not None
    ids = Library(sending.workspace).load_issue(WELCOME).meta.snippets
    assert [row[0] for row in recorded(sending, fired.send_id)] == list(ids)


# -- last sent, to how many ----------------------------------------------------------------


def test_snippets_list_rows_say_when_each_went_out_last_and_to_how_many(sending):
    library(sending)
    sending.add(3)
    first = send(sending, "2027-02-a")
    sending.add(2)
    second = send(sending, "2027-04-c")
    usage = snippet_usage(sending.workspace, sending.engine)
    assert usage["alpha"].sends == 2 and usage["alpha"].last.send_id == second
    assert usage["alpha"].last.sent == 5 and usage["alpha"].last.total == 5
    assert usage["gamma"].sends == 1 and "beta" in usage
    assert "how-microneedling-works" not in usage

    rows = {r.snippet.id: r for r in snippet_rows(sending.workspace, sending.engine)}
    assert rows["alpha"].use.ever_sent and not rows["collagen-and-elastin"].use.ever_sent
    assert rows["collagen-and-elastin"].last_sent == "never"
    assert rows["alpha"].last_sent.endswith(f"#{second} · 5")
    data = rows["alpha"].to_dict()
    assert data["id"] == "alpha" and data["title"] == "About alpha" and data["ever_sent"]
    assert data["sends"] == 2
    assert data["last_sent"]["send_id"] == second and data["last_sent"]["sent"] == 5
    assert data["last_sent"]["issue"] == "2027-04-c"
    assert rows["collagen-and-elastin"].to_dict()["last_sent"] is None
    assert first != second

    unused = {r.snippet.id for r in snippet_rows(sending.workspace, sending.engine, unused=True)}
    assert unused.isdisjoint({"alpha", "beta", "gamma"})
    assert "collagen-and-elastin" in unused and "how-microneedling-works" in unused
    tagged = snippet_rows(sending.workspace, sending.engine, "evidence", unused=True)
    assert all("evidence" in r.snippet.meta.tags and not r.use.ever_sent for r in tagged)


def test_a_cancelled_send_that_sent_nobody_does_not_count(sending):
    library(sending)
    sending.add(2)
    ledger = Ledger(sending.engine)
    record = create_send(ledger, plan_send(sending.workspace, sending.engine, "2027-02-a"))
    ledger.cancel(record.id)
    assert "alpha" not in snippet_usage(sending.workspace, sending.engine)


def test_a_cancelled_send_that_reached_a_reader_counts(sending):
    sending.add(2)
    record = sending.cancel_after_one(WELCOME)
    last = snippet_usage(sending.workspace, sending.engine)["how-microneedling-works"].last
    assert last.send_id == record.id and last.sent == 1


def test_a_send_from_before_reuse_tracking_is_read_from_its_issue_file(sending):
    sending.add(2)
    ledger = Ledger(sending.engine)
    plan = plan_send(sending.workspace, sending.engine, WELCOME)
    record = ledger.create_send(plan.build.rendered, "outbox", plan.audience)  # no record
    assert recorded(sending, record.id) == []
    usage = snippet_usage(sending.workspace, sending.engine)
    last = usage["how-microneedling-works"].last
    assert last.send_id == record.id and last.content_hash is None


# -- the check ----------------------------------------------------------------------------


def test_a_snippet_most_of_todays_audience_already_got_is_a_warning_naming_the_send(sending):
    library(sending)
    early = sending.add(3)
    send_a = send(sending, "2027-02-a")  # alpha to 3
    sending.add(3)
    send_b = send(sending, "2027-03-b")  # beta to 6
    sending.add(2)
    sending.store.unsubscribe(early[0], Context(Source.CLI))
    # Today: 7 people. alpha: 2 of them got it (29%); beta: 5 of them (71%).
    findings = check(sending, "2027-04-c")
    [warning] = findings
    assert warning.severity == Severity.WARNING and warning.code == "snippet-reused"
    assert "'beta'" in warning.message and f"send #{send_b}" in warning.message
    assert "2027-03-b" in warning.message and "5 of the 7 people" in warning.message
    assert "(71%)" in warning.message and "repeat: true" in warning.message
    assert warning.file.endswith("2027-04-c.md") and warning.line == 8  # `  - beta`
    assert f"#{send_a}" not in warning.message

    # The other issue's own earlier send is the --again gate's business, not a reuse.
    assert check(sending, "2027-03-b") == []


def test_a_topic_narrows_the_audience_it_is_compared_with(sending):
    library(sending)
    sending.add(4, topics=["evidence"])
    send(sending, "2027-03-b")  # beta to the 4
    sending.add(6, topics=["safety"])
    assert check(sending, "2027-04-c") == []  # 4 of 10
    [warning] = check(sending, "2027-04-c", topic="evidence")  # 4 of 4
    assert "4 of the 4 people" in warning.message


def test_a_snippet_changed_since_is_not_a_repeat(sending):
    library(sending)
    sending.add(3)
    send(sending, "2027-03-b")
    assert len(check(sending, "2027-04-c")) == 1
    sending.sample.snippet("beta", body="The beta snippet, rewritten.", title="About beta")
    assert check(sending, "2027-04-c") == []
    send(sending, "2027-04-c")  # the new beta goes out
    sending.sample.issue("2027-05-d", ["beta"])
    [warning] = check(sending, "2027-05-d")  # and now it is the same again
    assert "2027-04-c" in warning.message


def test_repeat_true_in_the_issue_allows_a_repeat(sending):
    library(sending)
    sending.add(3)
    send(sending, "2027-03-b")
    sending.sample.write(
        "issues/2027-04-c.md",
        """
        ---
        subject: A test issue
        preheader: A short teaser for the inbox.
        date: 2026-12-01
        status: ready
        snippets:
          - alpha
          - id: beta
            repeat: true
        ---
        Welcome.
        """,
    )
    issue = compose_issue(sending, "2027-04-c")
    assert listed_snippets(issue.source)["beta"].repeat
    assert check(sending, "2027-04-c") == []


def test_listed_snippets_reads_sections_and_mappings():
    text = (
        "---\nsubject: s\ndate: 2027-01-01\nsections:\n  - title: One\n    snippets: [a, b]\n"
        "  - title: Two\n    snippets:\n      - id: c\n        teaser: true\n"
        "      - id: d\n        repeat: true\n---\nIntro\n"
    )
    listed = listed_snippets(parse_issue("x", text, "x.md"))
    assert list(listed) == ["a", "b", "c", "d"]
    assert [listed[s].repeat for s in "abcd"] == [False, False, False, True]
    assert listed["c"].line == 9 and listed["d"].line == 11


def test_nobody_in_todays_audience_means_no_warning(sending):
    library(sending)
    ids = sending.add(2)
    send(sending, "2027-03-b")
    for sid in ids:
        sending.store.unsubscribe(sid, Context(Source.CLI))
    assert check(sending, "2027-04-c") == []


def test_the_reuse_warning_is_shown_before_a_send(sending, cli):
    library(sending)
    sending.add(3)
    send(sending, "2027-03-b")
    result = cli("send", "2027-04-c", "--yes")
    assert result.code == 0, result.err
    assert "snippet-reused" in result.err and "'beta'" in result.err


def test_snippets_list_shows_last_sent_and_unused(sending, cli):
    sending.add(2)
    send_id = sending.run("outbox")[1].id
    rows = {r["id"]: r for r in json.loads(cli("snippets", "list", "--json").out)}
    assert rows["how-microneedling-works"]["ever_sent"] is True
    unused = {r["id"] for r in json.loads(cli("snippets", "list", "--unused", "--json").out)}
    assert (
        "how-microneedling-works" not in unused
        and "sterile-technique-depth-and-frequency" in unused
    )
    assert f"#{send_id}" in cli("snippets", "list").out
