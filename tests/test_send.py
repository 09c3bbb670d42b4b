"""Sending through the ledger with the outbox transport, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SECRET
from sqlalchemy import func, select

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.message import MessageTemplate, Sender
from newsletter.domain.personalize import Recipient
from newsletter.domain.subscriber import Source, Status
from newsletter.domain.tokens import Purpose, Signer
from newsletter.errors import ExitStatus
from newsletter.infra.db.schema import deliveries
from newsletter.infra.transports.factory import make_transport
from newsletter.services.build import Builder
from newsletter.services.claims import WorkQueue
from newsletter.services.dispatch import Dispatcher, SendOptions
from newsletter.services.ledger import Ledger
from newsletter.services.links import list_identity
from newsletter.services.sending import create_send, plan_send
from newsletter.services.subscribers import Context

ISSUE = "2026-12-welcome"


def start(sending, topic=None):
    plan = plan_send(sending.workspace, sending.engine, ISSUE, topic=topic, again=True)
    return create_send(Ledger(sending.engine), plan, again=True)


def hand_over(queue, batch):
    """What a worker commits just before the transport gets the batch."""
    return queue.checkpoint(batch, [], [c.delivery_id for c in batch.claims])


def dispatcher(sending, on_batch=None, **options):
    return Dispatcher(
        Ledger(sending.engine),
        make_transport(sending.workspace, "outbox"),
        list_identity(sending.workspace.settings),
        Signer([SECRET]),
        SendOptions(**{"batch_size": 4, **options}),
        on_batch,
    )


def messages(sending, send_id):
    folder = sending.outbox / f"send-{send_id}"
    return {
        path.stem: email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(folder.glob("*.eml"))
    }


def test_every_active_subscriber_gets_exactly_one_message(sending):
    active = sending.add(9)
    [pending] = sending.add(1, status=Status.PENDING)
    [gone] = sending.add(1)
    sending.store.unsubscribe(gone, Context(Source.CLI))
    record = start(sending)
    assert record.total == 9
    final = dispatcher(sending).run(record.id)
    assert final.status == SendStatus.DONE
    assert final.counts["sent"] == 9
    sent = messages(sending, record.id)
    assert set(sent) == {f"sub-{i}" for i in active}
    assert f"sub-{pending}" not in sent and f"sub-{gone}" not in sent


def test_messages_carry_list_headers_and_personal_links(sending):
    [sid] = sending.add(1)
    record = start(sending)
    dispatcher(sending).run(record.id)
    message = messages(sending, record.id)[f"sub-{sid}"]
    assert message["Message-ID"] == f"<send-{record.id}.sub-{sid}@follicle-notes.example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"].endswith(">")
    url = message["List-Unsubscribe"].strip("<>").split(">")[0]
    token = url.rsplit("/", 1)[1]
    parsed = Signer([SECRET]).verify(token, Purpose.UNSUBSCRIBE)
    assert (parsed.subscriber_id, parsed.send_id) == (sid, record.id)
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert url in text.get_content() and url in html.get_content().replace("&amp;", "&")
    assert f"Hi Reader{sid - 1}," in text.get_content()


def test_an_unsubscribe_mid_send_is_honoured(sending):
    ids = sending.add(12)
    late = ids[-1]
    record = start(sending)

    def unsubscribe_after_first_batch(_handled: int) -> None:
        sending.store.unsubscribe(late, Context(Source.ONE_CLICK))

    final = dispatcher(sending, unsubscribe_after_first_batch).run(record.id)
    assert final.counts["sent"] == 11
    assert final.counts["skipped"] == 1
    assert f"sub-{late}" not in messages(sending, record.id)
    skipped = Ledger(sending.engine).deliveries_in(record.id, DeliveryStatus.SKIPPED)
    assert skipped[0][0] == late and "unsubscribed" in skipped[0][2]


def test_one_row_per_recipient_and_the_render_is_frozen(sending):
    sending.add(5)
    record = start(sending)
    snippet = sending.sample.root / "issues/snippets/how-microneedling-works.md"
    snippet.write_text(snippet.read_text(encoding="utf-8") + "\nA late edit.\n", "utf-8")
    dispatcher(sending).run(record.id)
    for message in messages(sending, record.id).values():
        assert "A late edit." not in message.get_body(("plain",)).get_content()
    with sending.engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.send_id == record.id)
        ).scalar()
    assert count == 5


def test_crash_recovery_requeues_unhanded_and_flags_handed(sending):
    sending.add(10)
    record = start(sending)
    ledger, queue = Ledger(sending.engine), WorkQueue(sending.engine)
    worker = queue.register_worker(record.id)
    first = queue.claim(record.id, worker, 3)
    hand_over(queue, first)  # handed over, then "crash"
    queue.claim(record.id, worker, 3)  # claimed, never handed over
    from newsletter.infra.db.schema import workers

    with sending.engine.begin() as connection:  # the worker's process is gone
        connection.execute(workers.update().values(pid=2**22 + 7))
    final = dispatcher(sending).run(record.id)
    assert final.counts == {**final.counts, "sent": 7, "uncertain": 3}
    assert final.status == SendStatus.DONE
    uncertain = ledger.deliveries_in(record.id, DeliveryStatus.UNCERTAIN)
    assert sorted(i for i, _, _ in uncertain) == sorted(c.subscriber_id for c in first.claims)
    assert ledger.resend_uncertain(record.id) == 3
    ledger.set_status(record.id, SendStatus.QUEUED)
    again = dispatcher(sending).run(record.id)
    assert again.counts["sent"] == 10 and again.counts["uncertain"] == 0


def test_topic_targets_followers(sending):
    sending.add(2, topics=["evidence"])
    sending.add(3, topics=["safety"])
    record = start(sending, topic="evidence")
    assert record.total == 2


def test_cli_send_show_list_and_exit_codes(sending, cli):
    sending.add(6)
    result = cli("send", ISSUE, "--yes", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["status"] == "done" and report["counts"]["sent"] == 6
    send_id = report["id"]
    shown = json.loads(cli("sends", "show", str(send_id), "--json").out)
    assert shown["total"] == 6 and shown["uncertain"] == []
    assert json.loads(cli("sends", "list", "--json").out)[0]["id"] == send_id
    assert cli("sends", "pause", str(send_id)).code == ExitStatus.INPUT_ERROR  # done already
    assert cli("sends", "show", "999").code == ExitStatus.INPUT_ERROR


def test_cli_needs_yes_when_not_interactive(sending, cli):
    sending.add(1)
    result = cli("send", ISSUE)
    assert result.code == ExitStatus.INPUT_ERROR and "--yes" in result.err


def test_check_errors_stop_the_send(sending, cli):
    sending.add(1)
    sending.sample.snippet("how-microneedling-works", body="TK")
    result = cli("send", ISSUE, "--yes")
    assert result.code == ExitStatus.CHECKS_FAILED
    # The findings themselves, with file and line, not a pointer to `check`.
    assert "how-microneedling-works.md:10: editing marker 'TK'" in result.err
    assert "(marker-left)" in result.err and "nothing was sent" in result.err
    assert not sending.outbox.exists()


def test_pause_resume_cancel(sending, cli):
    sending.add(3)
    record = start(sending)
    assert cli("sends", "pause", str(record.id)).code == 0
    paused = cli("send", "--resume", str(record.id))
    assert paused.code == ExitStatus.SEND_INCOMPLETE  # paused: nothing happens
    assert not (sending.outbox / f"send-{record.id}").exists()
    assert cli("sends", "resume", str(record.id)).code == 0
    assert cli("send", "--resume", str(record.id)).code == 0
    assert len(messages(sending, record.id)) == 3
    other = start(sending)
    assert cli("sends", "cancel", str(other.id)).code == 0
    cancelled = Ledger(sending.engine).get(other.id)
    assert cancelled.status == SendStatus.CANCELLED and cancelled.counts["skipped"] == 3


def test_test_send_is_marked_and_outside_the_ledger(sending, cli):
    result = cli("send", ISSUE, "--to", "editor@example.com", "--to", "Boss@Example.org")
    assert result.code == 0, result.err
    folders = [p for p in sending.outbox.iterdir() if p.name.startswith("test-")]
    assert len(folders) == 1
    sent = sorted(folders[0].glob("*.eml"))
    assert len(sent) == 2
    message = email.message_from_bytes(sent[0].read_bytes(), policy=email.policy.default)
    assert message["Subject"].startswith("[TEST] ")
    assert Ledger(sending.engine).list() == []


def test_test_list_from_settings_with_to_adding_and_each_path_printed(sending, cli, monkeypatch):
    no_list = cli("send", ISSUE, "--test")
    assert no_list.code == 2 and "[test]" in no_list.err
    monkeypatch.setenv("NEWSLETTER_TEST__RECIPIENTS", '["editor@example.com", "boss@example.org"]')
    result = cli("send", ISSUE, "--test", "--to", "Boss@Example.org,extra@example.net")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "editor@example.com",
        "boss@example.org",
        "extra@example.net",
    ]  # the list first, then --to; each address once
    for line in lines:
        path = line.split(" -> ", 1)[1]
        assert path.endswith(".eml") and Path(path).is_file()
    only = json.loads(cli("send", ISSUE, "--to", "solo@example.com", "--json").out)
    assert [o["address"] for o in only] == ["solo@example.com"]  # --to alone replaces the list


def test_dry_run_counts_and_sends_nothing(sending, cli):
    sending.add(4)
    [paused] = sending.add(1)
    from datetime import UTC, datetime, timedelta

    sending.store.update_preferences(
        paused,
        paused_until=datetime.now(UTC) + timedelta(days=30),
        context=Context(Source.PREFERENCES),
    )
    result = cli("send", ISSUE, "--dry-run", "--json")
    assert json.loads(result.out)["outcomes"] == {"would send": 4, "skipped (paused)": 1}
    assert not sending.outbox.exists()


def test_header_injection_is_cleaned_at_the_door_and_folded_in_the_message(sending):
    added = sending.store.add(
        "inject@example.com", name="Eve\r\nBcc: all@example.com", context=Context(Source.CLI)
    )
    assert added.name == "Eve Bcc: all@example.com"  # one line: a name, not a header
    # Whatever reaches a message all the same is folded into one line.
    build = Builder(sending.workspace).build(ISSUE)
    template = MessageTemplate(
        build.rendered,
        Sender("n@example.com", "N\r\nX-Evil: 1"),
        date=datetime.now(UTC),
        subject_prefix="[T]\r\nBcc: x@y.z ",
    )
    raw = template.render(
        Recipient(
            "inject@example.com",
            "Eve",
            name="Eve\r\nBcc: all@example.com",
            headers=(("List-Id", "L\r\nBcc: b@example.com <l.example.com>"),),
        ),
        "<id@example.com>",
    )
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers and b"\r\nX-Evil:" not in headers
    assert b"Eve Bcc: all@example.com" in headers
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Bcc"] is None and message["To"].addresses[0].addr_spec == "inject@example.com"


@pytest.mark.parametrize("transport", ["smtp", "sendgrid"])
def test_real_sends_refuse_without_a_signing_key(sending, cli, monkeypatch, transport):
    sending.add(1)
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    result = cli("send", ISSUE, "--yes", "--transport", transport)
    assert result.code == ExitStatus.INPUT_ERROR
    assert "NEWSLETTER_SECRET_KEY is not set" in result.err


def test_claims_of_a_worker_that_left_without_a_trace_are_recovered(sending):
    sending.add(6)
    record = start(sending)
    queue = WorkQueue(sending.engine)
    worker = queue.register_worker(record.id)
    queue.claim(record.id, worker, 4)  # then the worker stops on an error and unregisters
    queue.unregister_worker(worker)
    from datetime import UTC, datetime, timedelta

    from newsletter.infra.db.schema import deliveries as rows

    with sending.engine.begin() as connection:  # ... longer ago than the lease
        connection.execute(
            rows.update().values(claimed_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    final = dispatcher(sending).run(record.id)
    assert final.status == SendStatus.DONE and final.counts["sent"] == 6


def test_a_pause_that_starts_mid_send_is_honoured(sending):
    from datetime import UTC, datetime, timedelta

    ids = sending.add(6)
    record = start(sending)
    sending.store.update_preferences(
        ids[-1],
        paused_until=datetime.now(UTC) + timedelta(days=30),
        context=Context(Source.PREFERENCES),
    )
    final = dispatcher(sending).run(record.id)
    assert final.counts["sent"] == 5 and final.counts["skipped"] == 1
    [(_, _, reason)] = Ledger(sending.engine).deliveries_in(record.id, DeliveryStatus.SKIPPED)
    assert reason == "subscriber paused"


def test_every_reason_to_skip_is_recorded(sending):
    """The claim judges each subscriber in SQL; each reason reaches the ledger."""
    from datetime import UTC, datetime, timedelta

    ids = sending.add(5)
    record = start(sending)
    context = Context(Source.CLI)
    sending.store.unsubscribe(ids[0], context)
    sending.store.erase("reader1@example.com", context)
    sending.store.update_preferences(
        ids[2], paused_until=datetime.now(UTC) + timedelta(days=1), context=context
    )
    sending.store.update_preferences(  # a pause that is over skips nothing
        ids[3], paused_until=datetime.now(UTC) - timedelta(days=1), context=context
    )
    final = dispatcher(sending).run(record.id)
    assert final.counts["sent"] == 2 and final.counts["skipped"] == 3
    reasons = sorted(
        r for _, _, r in Ledger(sending.engine).deliveries_in(record.id, DeliveryStatus.SKIPPED)
    )
    assert reasons == [
        "subscriber erased",
        "subscriber paused",
        "subscriber unsubscribed before their turn",
    ]


def test_resend_uncertain_reopens_a_finished_send(sending, cli):
    sending.add(4)
    record = start(sending)
    queue = WorkQueue(sending.engine)
    worker = queue.register_worker(record.id)
    hand_over(queue, queue.claim(record.id, worker, 2))  # handed over, then "crash"
    from newsletter.infra.db.schema import workers

    with sending.engine.begin() as connection:
        connection.execute(workers.update().values(pid=2**22 + 7))
    assert dispatcher(sending).run(record.id).counts["uncertain"] == 2
    result = cli("send", "--resume", str(record.id), "--resend-uncertain", "--json")
    assert result.code == 0, result.err
    final = json.loads(result.out)
    assert final["status"] == "done" and final["counts"]["sent"] == 4
    assert final["counts"]["uncertain"] == 0


def test_resume_refuses_options_that_start_a_new_send(sending, cli):
    sending.add(1)
    record = start(sending)
    for extra in (["--dry-run"], ["--to", "a@example.com"], ["--topic", "x"]):
        result = cli("send", "--resume", str(record.id), *extra)
        assert result.code == ExitStatus.INPUT_ERROR
    assert cli("send", "--resume", str(record.id), "--transport", "smtp").code == 2
    assert not sending.outbox.exists()


def test_a_batch_taken_over_is_not_sent(sending):
    sending.add(3)
    record = start(sending)
    queue = WorkQueue(sending.engine)
    worker = queue.register_worker(record.id)
    batch = queue.claim(record.id, worker, 3)
    with sending.engine.begin() as connection:  # recovery gave one row to someone else
        connection.execute(
            deliveries.update()
            .where(deliveries.c.id == batch.claims[0].delivery_id)
            .values(claimed_by="someone-else/1")
        )
    assert hand_over(queue, batch) is False


def test_retries_of_a_cancelled_send_end_skipped(sending):
    sending.add(2)
    record = start(sending)
    ledger, queue = Ledger(sending.engine), WorkQueue(sending.engine)
    worker = queue.register_worker(record.id)
    batch = queue.claim(record.id, worker, 2)
    hand_over(queue, batch)
    ledger.cancel(record.id)
    from newsletter.services.claims import Verdict

    queue.record(
        batch, [Verdict(c.delivery_id, DeliveryStatus.QUEUED, 1, error="451") for c in batch.claims]
    )
    final = ledger.get(record.id)
    assert final.counts["skipped"] == 2 and final.counts["queued"] == 0


def _journal_in_a_process_that_died(folder, worker, lines):
    """A worker's journal written by a real process that then exited (as if killed)."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from newsletter.infra.journal import Journal;"
        "from newsletter.services.claims import HOST;"
        "j = Journal(Path(sys.argv[1]), sys.argv[2], HOST); j.write(sys.argv[3])"
    )
    subprocess.run([sys.executable, "-c", code, str(folder), worker, lines], check=True)


def _crashed_worker_with_six_handed(sending):
    sending.add(6)
    record = start(sending)
    queue = WorkQueue(sending.engine)
    worker = queue.register_worker(record.id)
    batch = queue.claim(record.id, worker, 6)
    hand_over(queue, batch)
    from newsletter.infra.db.schema import workers

    with sending.engine.begin() as connection:  # the worker's process is gone
        connection.execute(workers.update().values(pid=2**22 + 7))
    return record, worker, [c.delivery_id for c in batch.claims]


def test_a_dead_workers_journal_narrows_what_is_uncertain(sending, tmp_path):
    record, worker, ids = _crashed_worker_with_six_handed(sending)
    d = ids
    lines = f"P {d[0]}\nS {d[0]} <a@x>\nP {d[1]}\nS {d[1]} <b@x>\nP {d[2]}\nN {d[2]}\nP {d[3]}\n"
    _journal_in_a_process_that_died(tmp_path, worker, lines)
    requeued, uncertain = WorkQueue(sending.engine, tmp_path).recover(record.id)
    ledger = Ledger(sending.engine)
    assert (requeued, uncertain) == (3, 1)  # refused once and never pulled; in flight
    counts = ledger.get(record.id).counts
    assert counts["sent"] == 2 and counts["queued"] == 3 and counts["uncertain"] == 1
    [(subscriber_id, _, _)] = ledger.deliveries_in(record.id, DeliveryStatus.UNCERTAIN)
    with sending.engine.connect() as connection:
        row = connection.execute(
            select(deliveries.c.subscriber_id, deliveries.c.provider_message_id).where(
                deliveries.c.id == d[0]
            )
        ).one()
        in_flight = connection.execute(
            select(deliveries.c.subscriber_id).where(deliveries.c.id == d[3])
        ).scalar()
    assert row.provider_message_id == "<a@x>" and subscriber_id == in_flight
    assert not (tmp_path / f"{worker}.log").exists()  # used once, then gone


def test_a_journal_from_before_a_reboot_is_not_trusted(sending, tmp_path):
    record, worker, ids = _crashed_worker_with_six_handed(sending)
    _journal_in_a_process_that_died(tmp_path, worker, f"P {ids[0]}\nS {ids[0]} <a@x>\n")
    path = tmp_path / f"{worker}.log"
    head, rest = path.read_text().split("\n", 1)
    path.write_text(head.replace("boot=", "boot=another-") + "\n" + rest)
    assert WorkQueue(sending.engine, tmp_path).recover(record.id) == (0, 6)
    assert Ledger(sending.engine).get(record.id).counts["uncertain"] == 6


def test_the_journal_of_a_process_still_alive_is_not_trusted(sending, tmp_path):
    """A frozen worker (silent, not dead) could still send what it holds."""
    from newsletter.infra.journal import Journal
    from newsletter.services.claims import HOST

    record, worker, ids = _crashed_worker_with_six_handed(sending)
    Journal(tmp_path, worker, HOST).write(f"P {ids[0]}\nS {ids[0]} <a@x>\n")  # our own pid
    assert WorkQueue(sending.engine, tmp_path).recover(record.id) == (0, 6)
