"""`newsletter suppressions sync` against the local SendGrid stand-in, which checks every
request against SendGrid's suppressions spec (tsg_suppressions_v3.json) and fails the test
on one the spec does not allow; and the stand-in's own handling of those endpoints."""

from __future__ import annotations

import calendar
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from python_http_client.exceptions import BadRequestsError, HTTPError, UnauthorizedError
from sendgrid import SendGridAPIClient
from sendgrid_standin import SendGridStandIn
from sqlalchemy import func, insert, select

from newsletter.domain.subscriber import Source, Status
from newsletter.errors import ExitStatus
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import provider_events, subscriber_events, subscribers
from newsletter.infra.sendgrid_api import (
    Entry,
    SendgridUnavailable,
    SuppressionList,
    SuppressionsApi,
)
from newsletter.services import suppressions
from newsletter.services.subscribers import Context
from newsletter.services.suppressions import PushIncomplete, sync

KEY = "SG.suppressions-test-key-0123456789"
GROUP = 4242
T0 = 1_790_000_000  # when SendGrid listed an entry (unix seconds), 2026-09-21
CLI = Context(Source.CLI)


@pytest.fixture
def standin(sending, monkeypatch) -> Iterator[SendGridStandIn]:
    """The stand-in, configured as SendGrid for the workspace; any request the spec does
    not allow fails the test."""
    with SendGridStandIn(api_key=KEY) as server:
        monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", server.url)
        monkeypatch.setenv("NEWSLETTER_SENDGRID__ASM_GROUP_ID", str(GROUP))
        monkeypatch.setenv("SENDGRID_API_KEY", KEY)
        yield server
        server.assert_no_violations()


def person(sending, email: str, status: Status = Status.ACTIVE) -> int:
    record = sending.store.add(email, context=CLI)
    if status != Status.ACTIVE:
        sending.store.change_status(record.id, status, CLI)
    return record.id


def status_of(sending, email: str) -> Status:
    record = sending.store.find(email)
    assert record is not None
    return record.status


def bounce(email: str, created: int = T0, reason: str = "550 5.1.1 no such user") -> dict:
    return {"email": email, "created": created, "reason": reason, "status": "5.1.1"}


def listed(email: str, created: int = T0) -> dict:
    """An entry of the global unsubscribes."""
    return {"email": email, "created": created}


def spam(email: str, created: int = T0) -> dict:
    return {"email": email, "created": created, "ip": "10.63.202.100"}


def invalid(email: str, created: int = T0) -> dict:
    return {"email": email, "created": created, "reason": "Mail domain is unknown"}


def sync_json(cli, *args: str) -> dict[str, Any]:
    result = cli("suppressions", "sync", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def by_kind(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k["kind"]: k for k in report["kinds"]}


def count(sending, table) -> int:
    with sending.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def queries(standin: SendGridStandIn, operation_id: str) -> list[dict[str, str]]:
    return [
        {name: values[0] for name, values in r.query.items()}
        for r in standin.requests_to(operation_id)
    ]


LIST_OPERATIONS = (
    "ListSuppressionBounces",
    "ListSpamReport",
    "ListInvalidEmail",
    "ListGlobalSuppression",
)


# -- what each list does -----------------------------------------------------------------


def test_each_list_moves_its_subscribers_to_its_own_status(sending, standin, cli):
    for email in ("bounce", "invalid", "spam", "global", "group", "untouched"):
        person(sending, f"{email}@example.com")
    standin.seed("bounces", [bounce("bounce@example.com")])
    standin.seed("invalid_emails", [invalid("invalid@example.com")])
    standin.seed("spam_reports", [spam("Spam@EXAMPLE.com")])  # SendGrid's spelling
    standin.seed("unsubscribes", [listed("global@example.com")])
    standin.seed_group(GROUP, ["group@example.com"])

    report = sync_json(cli)

    assert status_of(sending, "bounce@example.com") == Status.BOUNCED
    assert status_of(sending, "invalid@example.com") == Status.BOUNCED
    assert status_of(sending, "spam@example.com") == Status.COMPLAINED
    assert status_of(sending, "global@example.com") == Status.UNSUBSCRIBED
    assert status_of(sending, "group@example.com") == Status.UNSUBSCRIBED
    assert status_of(sending, "untouched@example.com") == Status.ACTIVE
    kinds = by_kind(report)
    assert set(kinds) == {
        "spam-report",
        "bounce",
        "invalid-email",
        "unsubscribe",
        "group-unsubscribe",
    }
    for kind in kinds.values():
        assert (kind["pulled"], kind["on_list"], kind["new"], kind["changed"]) == (1, 1, 1, 1)
    assert report["changed"] == 5 and report["group_id"] == GROUP and report["push"] is None
    # Each change is in the consent record as the provider's doing, and each entry stored.
    bounced = sending.store.find("bounce@example.com")
    last = sending.store.events(bounced.id)[-1]
    assert (last.source, last.old_status, last.new_status) == (
        "provider-event",
        "active",
        "bounced",
    )
    with sending.engine.connect() as connection:
        rows = connection.execute(select(provider_events)).all()
    assert sorted(r.kind for r in rows) == [
        "suppression-bounce",
        "suppression-group-unsubscribe",
        "suppression-invalid-email",
        "suppression-spam-report",
        "suppression-unsubscribe",
    ]
    assert {r.provider for r in rows} == {"sendgrid"}
    row = next(r for r in rows if r.kind == "suppression-bounce")
    assert row.detail == "550 5.1.1 no such user" and row.subscriber_id == bounced.id


def test_lists_longer_than_a_page_are_read_page_by_page(sending, standin, cli):
    person(sending, "last@example.com")
    strangers = [bounce(f"gone{i}@example.net", T0 + i) for i in range(1200)]
    standin.seed("bounces", [*strangers, bounce("last@example.com", T0 + 5000)])

    report = sync_json(cli)

    assert queries(standin, "ListSuppressionBounces") == [
        {"limit": "500", "offset": "0"},
        {"limit": "500", "offset": "500"},
        {"limit": "500", "offset": "1000"},
    ]
    assert by_kind(report)["bounce"]["pulled"] == 1201
    assert by_kind(report)["bounce"]["on_list"] == 1
    assert status_of(sending, "last@example.com") == Status.BOUNCED


def test_a_full_last_page_is_followed_by_an_empty_one(sending, standin, cli):
    standin.seed("unsubscribes", [listed(f"u{i}@example.net", T0 + i) for i in range(500)])
    report = sync_json(cli)
    assert [q["offset"] for q in queries(standin, "ListGlobalSuppression")] == ["0", "500"]
    assert by_kind(report)["unsubscribe"]["pulled"] == 500


def test_the_group_list_is_read_whole_in_one_request(sending, standin, cli):
    standin.seed_group(GROUP, [f"g{i}@example.net" for i in range(700)])
    report = sync_json(cli, "--since", "2026-11-01")
    assert queries(standin, "ListSuppressionFromAsmGroup") == [{}]  # no paging, no dates
    assert standin.requests_to("ListSuppressionFromAsmGroup")[0].path == (
        f"/v3/asm/groups/{GROUP}/suppressions"
    )
    assert by_kind(report)["group-unsubscribe"]["pulled"] == 700


# -- never re-activating, never twice ------------------------------------------------------


def test_a_sync_never_reactivates_nor_weakens_a_status(sending, standin, cli):
    person(sending, "complained@example.com", Status.COMPLAINED)
    person(sending, "unsubscribed@example.com", Status.UNSUBSCRIBED)
    person(sending, "bounced@example.com", Status.BOUNCED)
    person(sending, "bounced-then-spam@example.com", Status.BOUNCED)
    standin.seed("bounces", [bounce("complained@example.com"), bounce("unsubscribed@example.com")])
    standin.seed("invalid_emails", [invalid("complained@example.com")])
    standin.seed(
        "unsubscribes",
        [
            listed("complained@example.com"),
            listed("unsubscribed@example.com"),
            listed("bounced@example.com"),
        ],
    )
    standin.seed("spam_reports", [spam("bounced-then-spam@example.com")])
    standin.seed_group(GROUP, ["complained@example.com", "bounced@example.com"])
    with sending.engine.connect() as connection:
        last_event = connection.execute(select(func.max(subscriber_events.c.id))).scalar_one()

    sync_json(cli)

    assert status_of(sending, "complained@example.com") == Status.COMPLAINED
    assert status_of(sending, "unsubscribed@example.com") == Status.BOUNCED  # stronger, kept off
    assert status_of(sending, "bounced@example.com") == Status.BOUNCED
    assert status_of(sending, "bounced-then-spam@example.com") == Status.COMPLAINED
    with sending.engine.connect() as connection:
        new_statuses = connection.execute(
            select(subscriber_events.c.new_status).where(subscriber_events.c.id > last_event)
        ).scalars()
        assert set(new_statuses) <= {"bounced", "complained"}


def test_an_unsubscribed_subscriber_on_the_unsubscribe_lists_stays_unsubscribed(
    sending, standin, cli
):
    subscriber_id = person(sending, "left@example.com", Status.UNSUBSCRIBED)
    standin.seed("unsubscribes", [listed("left@example.com")])
    standin.seed_group(GROUP, ["left@example.com"])
    events_before = len(sending.store.events(subscriber_id))

    report = sync_json(cli)

    assert status_of(sending, "left@example.com") == Status.UNSUBSCRIBED
    assert len(sending.store.events(subscriber_id)) == events_before
    assert by_kind(report)["unsubscribe"]["on_list"] == 1
    assert report["changed"] == 0


def test_a_second_sync_stores_and_changes_nothing(sending, standin, cli):
    for email in ("a", "b", "c"):
        person(sending, f"{email}@example.com")
    standin.seed("bounces", [bounce("a@example.com"), bounce("a@example.com", T0 + 60)])
    standin.seed("spam_reports", [spam("b@example.com")])
    standin.seed_group(GROUP, ["c@example.com", "stranger@example.net"])
    first = sync_json(cli)
    stored = count(sending, provider_events)
    logged = count(sending, subscriber_events)
    assert first["changed"] == 3 and stored == 4

    second = sync_json(cli)

    assert second["changed"] == 0
    assert all(k["new"] == 0 and k["changed"] == 0 for k in second["kinds"])
    assert [k["on_list"] for k in second["kinds"]] == [k["on_list"] for k in first["kinds"]]
    assert count(sending, provider_events) == stored
    assert count(sending, subscriber_events) == logged


def test_a_sync_that_races_another_runs_again_instead_of_failing(sending, standin, monkeypatch):
    person(sending, "x@example.com")
    standin.seed("bounces", [bounce("x@example.com")])
    api = SuppressionsApi(standin.url, KEY, 5)
    sync(sending.engine, api, group_id=GROUP)  # the other sync, which stores first
    real, calls = suppressions._known, []

    def unseen_the_first_time(connection, event_ids):  # as if not yet committed
        calls.append(event_ids)
        return set() if len(calls) == 1 else real(connection, event_ids)

    monkeypatch.setattr(suppressions, "_known", unseen_the_first_time)
    report = sync(sending.engine, api, group_id=GROUP)
    assert len(calls) == 2 and report.changed == 0
    assert count(sending, provider_events) == 1


def test_someone_who_came_back_is_not_suppressed_again_by_the_same_old_entry(sending, standin, cli):
    subscriber_id = person(sending, "back@example.com")
    standin.seed("bounces", [bounce("back@example.com")])
    sync_json(cli)
    assert status_of(sending, "back@example.com") == Status.BOUNCED
    sending.store.change_status(subscriber_id, Status.ACTIVE, CLI)  # confirmed anew

    assert sync_json(cli)["changed"] == 0
    assert status_of(sending, "back@example.com") == Status.ACTIVE

    standin.seed("bounces", [bounce("back@example.com", T0 + 86_400)])  # a new bounce
    assert sync_json(cli)["changed"] == 1
    assert status_of(sending, "back@example.com") == Status.BOUNCED


def test_unknown_addresses_are_counted_and_left_alone(sending, standin, cli):
    person(sending, "ours@example.com")
    standin.seed("bounces", [bounce("stranger@example.net")])
    standin.seed("invalid_emails", [invalid("not an address@")])
    standin.seed_group(GROUP, ["other@example.org"])

    report = by_kind(sync_json(cli))

    assert (report["bounce"]["pulled"], report["bounce"]["not_on_list"]) == (1, 1)
    assert report["invalid-email"]["not_on_list"] == 1
    assert report["group-unsubscribe"]["not_on_list"] == 1
    assert count(sending, provider_events) == 0  # strangers' addresses are not kept
    assert status_of(sending, "ours@example.com") == Status.ACTIVE


def test_stored_entries_name_the_address_only_where_erasure_clears_it(sending, standin, cli):
    person(sending, "forget.me@example.com")
    standin.seed("bounces", [bounce("forget.me@example.com")])
    sync_json(cli)
    sending.store.erase("forget.me@example.com", CLI)
    with sending.engine.connect() as connection:
        row = connection.execute(select(provider_events)).one()
    assert row.email is None and row.detail is None
    assert "forget" not in row.event_id and row.event_id.startswith("suppression:bounce:")


# -- --since ---------------------------------------------------------------------------------


def test_since_is_sent_as_the_start_of_that_day_in_utc(sending, standin, cli):
    start = calendar.timegm((2026, 11, 1, 0, 0, 0))
    person(sending, "old@example.com")
    person(sending, "new@example.com")
    standin.seed(
        "bounces", [bounce("old@example.com", start - 1), bounce("new@example.com", start)]
    )

    report = sync_json(cli, "--since", "2026-11-01")

    assert report["since"] == "2026-11-01"
    for operation in LIST_OPERATIONS:
        assert [q.get("start_time") for q in queries(standin, operation)] == [str(start)]
        assert "end_time" not in queries(standin, operation)[0]
    assert status_of(sending, "new@example.com") == Status.BOUNCED
    assert status_of(sending, "old@example.com") == Status.ACTIVE


def test_without_since_everything_is_pulled(sending, standin, cli):
    sync_json(cli)
    for operation in LIST_OPERATIONS:
        assert queries(standin, operation) == [{"limit": "500", "offset": "0"}]


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "2026-11-01T00:00", "20261101"])
def test_a_bad_since_date_is_an_input_error_naming_the_option(cli, value):
    result = cli("suppressions", "sync", "--since", value)
    assert result.code == ExitStatus.INPUT_ERROR
    assert "--since" in result.err and "YYYY-MM-DD" in result.err


# -- --push ---------------------------------------------------------------------------------


def test_push_posts_exactly_our_unsubscribed_and_complained_addresses(sending, standin, cli):
    person(sending, "active@example.com")
    person(sending, "pending@example.com", Status.PENDING)
    person(sending, "bounced@example.com", Status.BOUNCED)
    person(sending, "left@example.com", Status.UNSUBSCRIBED)
    person(sending, "Angry@example.com", Status.COMPLAINED)
    person(sending, "there@example.com", Status.UNSUBSCRIBED)
    person(sending, "erased@example.com", Status.UNSUBSCRIBED)
    sending.store.erase("erased@example.com", CLI)
    standin.seed_group(GROUP, ["THERE@example.com"])

    report = sync_json(cli, "--push")

    posted = [email for _, emails in standin.group_posts for email in emails]
    assert sorted(posted) == ["Angry@example.com", "left@example.com"]
    assert {group for group, _ in standin.group_posts} == {str(GROUP)}
    assert report["push"] == {"group_id": GROUP, "ours": 3, "already_in_group": 1, "pushed": 2}


def test_push_includes_those_the_pull_just_suppressed(sending, standin, cli):
    person(sending, "spam@example.com")
    standin.seed("spam_reports", [spam("spam@example.com")])
    report = sync_json(cli, "--push")
    assert standin.group(GROUP) == ["spam@example.com"]
    assert report["push"]["pushed"] == 1


def test_our_own_pushes_coming_back_from_the_group_change_nothing(sending, standin, cli):
    subscriber_id = person(sending, "left@example.com", Status.UNSUBSCRIBED)
    sync_json(cli, "--push")
    assert standin.group(GROUP) == ["left@example.com"]
    sending.store.change_status(subscriber_id, Status.ACTIVE, CLI)  # came back, here

    report = by_kind(sync_json(cli))

    assert report["group-unsubscribe"]["on_list"] == 1
    assert report["group-unsubscribe"]["new"] == 0
    assert status_of(sending, "left@example.com") == Status.ACTIVE


def test_push_goes_in_chunks(sending, standin, cli):
    at = now()
    with sending.engine.begin() as connection:
        connection.execute(
            insert(subscribers),
            [
                {
                    "email": f"gone{i}@example.com",
                    "email_key": f"gone{i}@example.com",
                    "status": "unsubscribed",
                    "topics": [],
                    "attributes": {},
                    "created_at": at,
                }
                for i in range(1203)
            ],
        )
    standin.seed_group(GROUP, ["gone0@example.com", "gone1@example.com"])

    report = sync_json(cli, "--push")

    assert [len(emails) for _, emails in standin.group_posts] == [500, 500, 201]
    assert report["push"]["pushed"] == 1201 and report["push"]["already_in_group"] == 2
    assert len(standin.group(GROUP)) == 1203


def test_push_with_nobody_to_push_posts_nothing(sending, standin, cli):
    person(sending, "happy@example.com")
    report = sync_json(cli, "--push")
    assert standin.group_posts == [] and report["push"]["pushed"] == 0


def test_push_without_a_group_names_the_setting_and_asks_nothing(
    sending, standin, cli, monkeypatch
):
    monkeypatch.delenv("NEWSLETTER_SENDGRID__ASM_GROUP_ID")
    result = cli("suppressions", "sync", "--push")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "asm_group_id" in result.err
    assert standin.api_requests == []


def test_without_a_group_the_group_list_is_not_read(sending, standin, cli, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_SENDGRID__ASM_GROUP_ID")
    report = sync_json(cli)
    assert report["group_id"] is None
    assert "group-unsubscribe" not in by_kind(report)
    assert standin.requests_to("ListSuppressionFromAsmGroup") == []
    table = cli("suppressions", "sync")
    assert "[sendgrid] asm_group_id is not set" in table.out


class _FailingPush:
    """Pulls nothing; takes one chunk, then SendGrid goes away."""

    def pull(self, which: SuppressionList, start_time: int | None = None) -> list[Entry]:
        return []

    def group_members(self, group_id: int) -> list[str]:
        return []

    def add_to_group(self, group_id, emails, *, done=None) -> int:
        done(emails[:2])
        raise SendgridUnavailable("SendGrid failed (503 to POST ...)")


def test_a_push_that_stops_part_way_says_how_far_it_got(sending):
    for name in ("a", "b", "c"):
        person(sending, f"{name}@example.com", Status.UNSUBSCRIBED)
    with pytest.raises(PushIncomplete) as caught:
        sync(sending.engine, _FailingPush(), group_id=GROUP, push=True)  # type: ignore[arg-type]
    assert caught.value.exit_status == ExitStatus.UNAVAILABLE
    assert "503" in str(caught.value) and "2 of 3 addresses were pushed" in str(caught.value)


# -- failures ------------------------------------------------------------------------------


def test_a_missing_api_key_names_the_variable(sending, standin, cli, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY")
    result = cli("suppressions", "sync", "--json")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "SENDGRID_API_KEY is not set" in result.err
    assert json.loads(result.out)["exit_status"] == ExitStatus.INPUT_ERROR
    assert standin.api_requests == []


def test_a_refused_key_says_so_without_echoing_it(sending, standin, cli, monkeypatch):
    wrong = "SG.not-the-right-key-987654321"
    monkeypatch.setenv("SENDGRID_API_KEY", wrong)
    person(sending, "x@example.com")
    standin.seed("bounces", [bounce("x@example.com")])
    result = cli("suppressions", "sync")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "refused the API key (401" in result.err and "SENDGRID_API_KEY" in result.err
    assert wrong not in result.err + result.out and KEY not in result.err + result.out
    assert status_of(sending, "x@example.com") == Status.ACTIVE


def test_sendgrid_down_exits_unavailable_without_the_key(sending, cli, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    result = cli("suppressions", "sync", "--json")
    assert result.code == ExitStatus.UNAVAILABLE
    assert "cannot reach SendGrid" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert KEY not in result.err + result.out
    assert json.loads(result.out)["exit_status"] == ExitStatus.UNAVAILABLE


@pytest.mark.parametrize("status", [429, 500, 503])
def test_server_errors_and_rate_limits_exit_unavailable_and_change_nothing(
    sending, standin, cli, status
):
    person(sending, "x@example.com")
    standin.seed("unsubscribes", [listed("x@example.com")])
    standin.seed("bounces", [bounce("x@example.com")])
    standin.fail_next(status)  # the first request; the others would succeed
    result = cli("suppressions", "sync")
    assert result.code == ExitStatus.UNAVAILABLE
    assert f"{status} to GET /v3/suppression/" in result.err
    assert status_of(sending, "x@example.com") == Status.ACTIVE
    assert count(sending, provider_events) == 0
    assert KEY not in result.err


# -- output --------------------------------------------------------------------------------


def test_the_table_shows_counts_per_list(sending, standin, cli):
    person(sending, "a@example.com")
    standin.seed("bounces", [bounce("a@example.com"), bounce("b@example.net")])
    result = cli("suppressions", "sync", "--since", "2026-01-01")
    assert result.code == 0, result.err
    assert "since 2026-01-01 (UTC)" in result.out
    line = next(line for line in result.out.splitlines() if line.lstrip().startswith("bounces"))
    assert line.split()[1:] == ["2", "1", "1", "1", "bounced"]
    assert f"group {GROUP}: read whole" in result.out
    assert "1 subscriber status change(s)" in result.out
    assert "a@example.com" not in result.out  # counts, not addresses


def test_json_has_the_same_counts_and_nothing_else_on_stdout(sending, standin, cli):
    person(sending, "a@example.com", Status.UNSUBSCRIBED)
    result = cli("suppressions", "sync", "--json", "--push")
    report = json.loads(result.out)  # the whole of stdout is the JSON
    assert set(report) == {"since", "group_id", "kinds", "changed", "push"}
    assert set(report["kinds"][0]) == {
        "kind",
        "label",
        "status",
        "pulled",
        "on_list",
        "not_on_list",
        "new",
        "changed",
    }
    assert report["push"]["pushed"] == 1


# -- the stand-in's suppression endpoints ---------------------------------------------------


@pytest.fixture
def bare() -> Iterator[SendGridStandIn]:
    with SendGridStandIn(api_key=KEY) as server:
        yield server


@pytest.fixture
def sg(bare: SendGridStandIn) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=KEY, host=bare.url)


def page(response: Any) -> list[Any]:
    return json.loads(response.body)


def test_standin_pages_and_filters_as_the_spec_describes(bare, sg):
    bare.seed("bounces", [bounce(f"r{i}@example.com", T0 + i) for i in range(12)])
    bounces = sg.client.suppression.bounces
    assert len(page(bounces.get(query_params={"limit": 5}))) == 5
    assert [e["email"] for e in page(bounces.get(query_params={"limit": 5, "offset": 10}))] == [
        "r10@example.com",
        "r11@example.com",
    ]
    window = page(bounces.get(query_params={"start_time": T0 + 3, "end_time": T0 + 4}))
    assert [e["created"] for e in window] == [T0 + 3, T0 + 4]  # both ends inclusive
    assert len(page(bounces.get(query_params={"email": "r1"}))) == 3  # r1, r10, r11
    bare.default_page_size = 4
    assert len(page(bounces.get())) == 4  # no limit: the default page size
    bare.assert_no_violations()


def test_standin_serves_and_fills_a_group(bare, sg):
    bare.seed_group(7, ["a@example.com"])
    group = sg.client.asm.groups._("7").suppressions
    assert page(group.get()) == ["a@example.com"]
    answer = group.post(request_body={"recipient_emails": ["b@example.com", "A@example.com"]})
    assert answer.status_code == 201
    assert json.loads(answer.body) == {"recipient_emails": ["b@example.com", "A@example.com"]}
    assert bare.group(7) == ["a@example.com", "b@example.com"]  # each address once
    assert bare.group_posts == [("7", ["b@example.com", "A@example.com"])]
    bare.assert_no_violations()


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda sg: sg.client.suppression.bounces.get(query_params={"limit": 501}), "maximum"),
        (lambda sg: sg.client.suppression.spam_reports.get(query_params={"limit": 0}), "minimum"),
        (lambda sg: sg.client.suppression.unsubscribes.get(query_params={"offset": -1}), "minim"),
        (lambda sg: sg.client.suppression.bounces.get(query_params={"page": 2}), "'page'"),
        (
            lambda sg: sg.client.suppression.invalid_emails.get(query_params={"limit": "many"}),
            "integer",
        ),
        (
            lambda sg: sg.client.asm.groups._("7").suppressions.get(query_params={"limit": 5}),
            "'limit'",
        ),
        (
            lambda sg: sg.client.asm.groups._("7").suppressions.post(request_body={"emails": []}),
            "recipient_emails",
        ),
        (
            lambda sg: sg.client.asm.groups._("7").suppressions.post(
                request_body={"recipient_emails": ["no-at-sign"]}
            ),
            "email",
        ),
    ],
)
def test_standin_refuses_what_the_spec_does_not_allow_and_says_so_loudly(bare, sg, call, said):
    with pytest.raises(BadRequestsError) as caught:
        call(sg)
    assert said in json.loads(caught.value.body)["errors"][0]["message"]
    assert len(bare.violations) == 1
    with pytest.raises(AssertionError, match="does not allow"):
        bare.assert_no_violations()


def test_standin_requires_the_accept_header_the_bounces_operation_declares(bare):
    request = urllib.request.Request(
        bare.url + "/v3/suppression/bounces", headers={"Authorization": f"Bearer {KEY}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert "accept header is required" in caught.value.read().decode()
    assert bare.violations


def test_standin_operations_it_does_not_serve_are_loud(bare, sg):
    with pytest.raises(HTTPError) as caught:
        sg.client.asm.groups.get()
    assert caught.value.status_code == 501
    assert "ListAsmGroup" in bare.violations[0]


def test_standin_refuses_a_wrong_key_on_the_suppression_endpoints(bare):
    wrong = SendGridAPIClient(api_key="SG.wrong", host=bare.url)
    with pytest.raises(UnauthorizedError):
        wrong.client.suppression.bounces.get(query_params={"limit": 1})
    with pytest.raises(UnauthorizedError):
        wrong.client.asm.groups._("7").suppressions.post(request_body={"recipient_emails": []})
    assert bare.group_posts == []


def test_standin_refuses_to_seed_what_sendgrid_would_not_answer(bare):
    with pytest.raises(ValueError, match="created"):
        bare.seed("spam_reports", [{"email": "a@example.com", "ip": "10.0.0.1"}])
    with pytest.raises(ValueError, match="no suppression list"):
        bare.seed("complaints", [])
