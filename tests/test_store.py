"""The subscriber store on SQLite and PostgreSQL: identity, status, consent log, erasure."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from newsletter.domain.subscriber import Source, Status
from newsletter.errors import InputError
from newsletter.infra.db.schema import metadata, subscriber_events
from newsletter.services.subscribers import Context

CLI = Context(Source.CLI)


def test_migrations_match_the_table_definitions(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_address_is_unique_case_insensitively_and_stored_as_given(store):
    record = store.add("Ada.Lovelace@Example.COM", name="Ada Lovelace", context=CLI)
    assert record.email == "Ada.Lovelace@example.com"  # domain lowercased, local part kept
    assert store.find("ada.lovelace@example.com").id == record.id
    with pytest.raises(InputError, match="already on the list"):
        store.add("ADA.LOVELACE@example.com", context=CLI)


def test_internationalized_address(store):
    record = store.add("José@Bücher.DE", context=CLI)
    assert record.email == "José@bücher.de"
    assert store.find("josé@BÜCHER.de").id == record.id


def test_invalid_address_is_an_input_error(store):
    with pytest.raises(InputError, match="invalid email address"):
        store.add("not-an-address", context=CLI)


def test_status_changes_are_logged_with_source_and_idempotent(store):
    record = store.add("a@example.com", context=CLI)
    web = Context(Source.ONE_CLICK, None, "203.0.113.9", "Mozilla/5.0")
    changed_record, changed = store.unsubscribe(record.id, web)
    assert changed and changed_record.status == Status.UNSUBSCRIBED
    assert changed_record.unsubscribed_at is not None
    assert store.unsubscribe(record.id, web)[1] is False
    events = store.events(record.id)
    assert [(e.kind, e.old_status, e.new_status, e.source) for e in events] == [
        ("created", None, "active", "cli"),
        ("status", "active", "unsubscribed", "one-click"),
    ]
    assert (events[1].ip, events[1].user_agent) == ("203.0.113.9", "Mozilla/5.0")


def test_resubscribe_needs_a_reason(store):
    record = store.add("a@example.com", context=CLI)
    store.unsubscribe(record.id, CLI)
    with pytest.raises(InputError, match="needs a reason"):
        store.resubscribe(record.id, "  ", CLI)
    again, changed = store.resubscribe(record.id, "asked by phone", CLI)
    assert changed and again.status == Status.ACTIVE
    assert store.events(record.id)[-1].detail == "asked by phone"


def test_bounced_stays_bounced_on_unsubscribe(store):
    record = store.add("a@example.com", context=CLI)
    store.change_status(record.id, Status.BOUNCED, Context(Source.PROVIDER, "bounce"))
    assert store.unsubscribe(record.id, CLI)[1] is False
    assert store.get("a@example.com").status == Status.BOUNCED


def test_erase_removes_personal_data_and_keeps_suppression(store, engine):
    record = store.add("Erin@example.com", name="Erin", topics=["evidence"], context=CLI)
    store.unsubscribe(record.id, Context(Source.ONE_CLICK, None, "198.51.100.7", "UA"))
    erased = store.erase("erin@EXAMPLE.com", CLI)
    assert (erased.email, erased.name, erased.topics, erased.attributes) == (None, None, [], {})
    assert erased.erased_at is not None
    assert store.find("erin@example.com") is None
    with engine.connect() as connection:
        rows = connection.execute(
            select(subscriber_events.c.ip, subscriber_events.c.user_agent)
        ).all()
    assert all(ip is None and agent is None for ip, agent in rows)
    assert store.events(record.id)[-1].kind == "erased"
    with pytest.raises(InputError, match="erased"):
        store.add("ERIN@example.com", context=CLI)


def test_list_count_filter_and_iterate(store):
    for i in range(7):
        store.add(f"p{i}@example.com", topics=["evidence"] if i % 2 else ["safety"], context=CLI)
    store.unsubscribe(store.get("p0@example.com").id, CLI)
    assert store.count()["active"] == 6
    assert store.count()["unsubscribed"] == 1
    assert store.count(topic="evidence")["active"] == 3
    page = store.list([Status.ACTIVE], limit=4)
    assert [r.email for r in page] == [f"p{i}@example.com" for i in range(1, 5)]
    second = store.list([Status.ACTIVE], limit=4, offset=4)
    assert [r.email for r in second] == ["p5@example.com", "p6@example.com"]
    assert {r.email for r in store.list(topic="safety")} == {
        "p0@example.com",
        "p2@example.com",
        "p4@example.com",
        "p6@example.com",
    }
    assert [r.email for r in store.iterate(batch=3)] == [f"p{i}@example.com" for i in range(7)]


def test_concurrent_unsubscribes_record_one_event(store):
    record = store.add("racer@example.com", context=CLI)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def click() -> None:
        barrier.wait()
        results.append(store.unsubscribe(record.id, Context(Source.ONE_CLICK))[1])

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert [e.new_status for e in store.events(record.id)] == ["active", "unsubscribed"]
