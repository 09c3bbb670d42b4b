"""What stands between an editor and a send that would hurt readers: an issue goes out
once, drafts stay in, a topic reaches everyone the preferences page promises, and a prompt
that is answered no sends nothing."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.domain.subscriber import Source
from newsletter.errors import ExitStatus
from newsletter.services.ledger import Ledger
from newsletter.services.scheduling import ScheduleBook
from newsletter.services.subscribers import Context

ISSUE = "2026-12-welcome"


def interactive(monkeypatch, answer: str) -> None:
    """A terminal on stdin that answers the prompt."""
    stdin = io.StringIO(answer + "\n")
    stdin.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", stdin)


def test_an_issue_is_sent_once_unless_again(sending, cli):
    sending.add(3)
    first = cli("send", ISSUE, "--yes", "--json")
    assert first.code == 0, first.err
    again = cli("send", ISSUE, "--yes")
    assert again.code == ExitStatus.INPUT_ERROR
    assert "already sent: send #1 on " in again.err and "to 3 recipient(s)" in again.err
    assert "--again" in again.err
    assert len(Ledger(sending.engine).list()) == 1
    forced = cli("send", ISSUE, "--yes", "--again", "--json")
    assert forced.code == 0, forced.err
    assert json.loads(forced.out)["counts"]["sent"] == 3
    assert len(Ledger(sending.engine).list()) == 2


def test_a_cancelled_send_does_not_count_as_sent(sending, cli):
    sending.add(2)
    sending.store.add("held@example.com", context=Context(Source.CLI))
    from newsletter.services.sending import create_send, plan_send

    plan = plan_send(sending.workspace, sending.engine, ISSUE)
    record = create_send(Ledger(sending.engine), plan)
    assert cli("sends", "cancel", str(record.id)).code == 0
    assert cli("send", ISSUE, "--yes").code == 0


def test_a_send_cancelled_after_it_reached_a_reader_counts_as_sent(sending, cli):
    sending.add(3)
    cancelled = sending.cancel_after_one(ISSUE)
    assert (cancelled.counts["sent"], cancelled.counts["skipped"]) == (1, 2)
    again = cli("send", ISSUE, "--yes")
    assert again.code == ExitStatus.INPUT_ERROR
    assert f"already sent: send #{cancelled.id}" in again.err and "(cancelled)" in again.err
    listed = json.loads(cli("issues", "list", "--json").out)
    [welcome] = [i for i in listed if i["slug"] == ISSUE]
    assert welcome["send_id"] == cancelled.id and welcome["sent"] == 1


def test_the_prompt_warns_of_a_second_send(sending, cli, monkeypatch):
    sending.add(1)
    assert cli("send", ISSUE, "--yes").code == 0
    interactive(monkeypatch, "n")
    result = cli("send", ISSUE, "--again")
    assert "was already sent" in result.err and "AGAIN?" in result.out + result.err
    assert result.code == ExitStatus.INPUT_ERROR and "aborted" in result.err
    assert len(Ledger(sending.engine).list()) == 1


def test_answering_no_exits_2_and_sends_nothing(sending, cli, monkeypatch):
    sending.add(1)
    interactive(monkeypatch, "n")
    result = cli("send", ISSUE)
    assert result.code == ExitStatus.INPUT_ERROR
    assert "aborted: nothing was sent" in result.err
    assert Ledger(sending.engine).list() == [] and not sending.outbox.exists()


def test_if_unsent_makes_a_rerun_say_where_the_messages_are(sending, cli):
    sending.add(2)
    assert cli("send", ISSUE, "--yes", "--if-unsent").code == 0
    rerun = cli("send", ISSUE, "--yes", "--if-unsent")
    assert rerun.code == 0
    assert "already sent: send #1" in rerun.out
    assert f"messages are in {sending.outbox / 'send-1'}/" in rerun.out
    assert len(Ledger(sending.engine).list()) == 1


def test_a_draft_is_refused_unless_allowed(sending, cli):
    sending.add(1)
    line = sending.sample.edit(f"issues/{ISSUE}.md", "status: ready", "status: draft")
    refused = cli("send", ISSUE, "--yes")
    assert refused.code == ExitStatus.INPUT_ERROR
    assert f"issues/{ISSUE}.md:{line}: the issue is marked draft" in refused.err
    assert Ledger(sending.engine).list() == []
    assert cli("send", ISSUE, "--dry-run").code == ExitStatus.INPUT_ERROR
    allowed = cli("send", ISSUE, "--yes", "--allow-draft")
    assert allowed.code == 0, allowed.err


def test_warnings_are_shown_before_the_prompt(sending, cli, monkeypatch):
    sending.add(1)
    sending.sample.edit(f"issues/{ISSUE}.md", "status: ready", "status: draft")
    interactive(monkeypatch, "n")
    result = cli("send", ISSUE, "--allow-draft")
    assert "warning" in result.err and "issue is marked draft" in result.err
    assert result.code == ExitStatus.INPUT_ERROR


def test_a_topic_reaches_its_followers_and_those_who_follow_nothing(sending, cli):
    followers = sending.add(4, topics=["basics"])
    everything = sending.add(6)
    sending.add(3, topics=["safety"])
    dry = json.loads(cli("send", ISSUE, "--topic", "basics", "--dry-run", "--json").out)
    assert dry["audience"] == 10 and dry["outcomes"] == {"would send": 10}
    result = cli("send", ISSUE, "--topic", "basics", "--yes", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["total"] == 10 and report["counts"]["sent"] == 10
    sent_to = {p.stem for p in (sending.outbox / f"send-{report['id']}").glob("*.eml")}
    assert sent_to == {f"sub-{i}" for i in followers + everything}


@pytest.mark.parametrize("mode", [["--yes"], ["--dry-run"], ["--dry-run", "--json"]])
def test_an_unknown_topic_is_refused_everywhere(sending, cli, mode):
    sending.add(2)
    result = cli("send", ISSUE, "--topic", "basic", *mode)
    assert result.code == ExitStatus.INPUT_ERROR
    assert "unknown topic 'basic'; did you mean basics" in result.err
    assert Ledger(sending.engine).list() == [] and not sending.outbox.exists()


def test_a_topic_only_subscribers_follow_is_known(sending, cli):
    sending.add(2, topics=["newcomers"])
    assert cli("send", ISSUE, "--topic", "newcomers", "--dry-run").code == 0


LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
PROMPTED = [
    (("send", ISSUE), "sending", "sent"),
    (("schedule", ISSUE, "--at", LATER), "scheduling", "scheduled"),
    (("subscribers", "erase", "reader0@example.com"), "erase", "erased"),
]


@pytest.mark.parametrize(("args", "doing", "undone"), PROMPTED, ids=lambda v: str(v[0]))
def test_what_cannot_be_undone_asks_and_a_script_must_say_yes(
    sending, cli, monkeypatch, args, doing, undone
):
    """send, schedule and erase share one prompt: no terminal is exit 2 naming --yes, and
    answering no is exit 2 with nothing done."""
    sending.add(1)
    scripted = cli(*args)
    assert scripted.code == ExitStatus.INPUT_ERROR
    assert f"{doing} needs --yes when not run interactively" in scripted.err
    interactive(monkeypatch, "n")
    declined = cli(*args)
    assert declined.code == ExitStatus.INPUT_ERROR
    assert f"aborted: nothing was {undone}" in declined.err
    assert Ledger(sending.engine).list() == []
    assert ScheduleBook(sending.workspace, sending.engine).list() == []
    assert sending.store.find("reader0@example.com") is not None
