"""Subscriber-side inputs that once slipped through; each must now be handled."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select

from newsletter.domain.list_headers import ListIdentity, recipient_links
from newsletter.domain.subscriber import Source, Status
from newsletter.domain.tokens import Purpose, Signer
from newsletter.infra.db.schema import imports, meta
from newsletter.services.importer import import_csv
from newsletter.services.subscribers import Context
from newsletter.web.ratelimit import MAX_KEYS, RateLimiter, client_key

CLI = Context(Source.CLI)


def test_old_confirmation_cannot_undo_an_unsubscribe(web):
    record = web.store.add("flip@example.org", status=Status.PENDING, context=CLI)
    token = web.signer.sign(Purpose.CONFIRM, record.id)
    assert httpx.post(f"{web.url}/confirm/{token}").status_code == 200
    web.store.unsubscribe(record.id, Context(Source.ONE_CLICK))
    assert httpx.post(f"{web.url}/confirm/{token}").status_code == 404
    assert web.store.get("flip@example.org").status == Status.UNSUBSCRIBED


def test_preferences_keep_topics_outside_the_library(web):
    record = web.store.add("t@example.org", topics=["evidence", "vip"], context=CLI)
    url = f"{web.url}/preferences/{web.signer.sign(Purpose.PREFERENCES, record.id)}"
    httpx.post(url, data={"action": "topics", "topic": ["evidence", "vip"]})
    assert web.store.get("t@example.org").topics == ["evidence", "vip"]
    assert httpx.post(url, data={"action": "pause", "pause_days": "²"}).status_code == 400


def test_names_are_cleaned_never_refused(web, engine, tmp_path):
    assert web.store.add("nul@example.org", name="a\x00b", context=CLI).name == "ab"
    assert web.store.add("long@example.org", name="x" * 300, context=CLI).name == "x" * 200
    spoof = "Ann\u202egnp.exe\u200b \t\n Lee"
    assert web.store.add("bidi@example.org", name=spoof, context=CLI).name == "Anngnp.exe Lee"
    response = httpx.post(f"{web.url}/subscribe", data={"email": "n@example.org", "name": "a\x00b"})
    assert response.status_code == 200


def test_import_nul_bytes_wide_rows_and_pending(engine, store, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(
        b"email,name,status\n"
        b"nul@example.com,Ze\x00d,\n"
        b"wide@example.com" + b",x" * 50 + b"\n"
        b"pend@example.com,P,pending\n"
    )
    report = import_csv(engine, path)
    assert report.invalid == 2
    assert [p.reason for p in report.problems] == ["contains a NUL byte", "51 fields for 3 columns"]
    assert store.get("pend@example.com").status == Status.PENDING


def test_stored_import_report_does_not_keep_addresses(engine, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("email\nsecret.person@example.com\nSECRET.person@example.com\n")
    import_csv(engine, path)
    with engine.connect() as connection:
        stored = connection.execute(select(imports.c.report)).scalar_one()
    assert "secret.person" not in json.dumps(stored)


def test_erasure_clears_event_details_and_outbox_files(sample, cli):
    cli("subscribers", "add", "gone@example.com")
    cli("subscribers", "unsubscribe", "gone@example.com")
    cli("subscribers", "resubscribe", "gone@example.com", "--reason", "gone@example.com phoned")
    assert cli("send", "2026-12-welcome", "--yes").code == 0
    outbox = sample.root / ".state" / "outbox"
    assert list(outbox.glob("*/sub-1.eml"))
    result = cli("subscribers", "erase", "gone@example.com", "--yes")
    assert "1 outbox message(s) deleted" in result.out
    assert not list(outbox.glob("*/sub-1.eml"))


def test_the_migration_makes_the_erasure_salt(engine):
    with engine.connect() as connection:
        assert connection.execute(select(meta.c.value).where(meta.c.key == "erasure_salt")).scalar()


def test_rate_limiter_forgets_idle_keys_and_groups_ipv6():
    limiter = RateLimiter(1, 60)
    for i in range(MAX_KEYS + 50):
        limiter.allow(f"k{i}", now=0)
    assert len(limiter._hits) == MAX_KEYS
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert limiter.allow("a", now=0) and not limiter.allow("a", now=1)
    assert limiter.allow("a", now=61)


def test_forwarded_for_is_read_only_from_trusted_proxies():
    from ipaddress import ip_network

    from newsletter.web.pages import client_ip

    proxies = [ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32")]
    # Behind two trusted proxies: the right-most hop that is not a proxy is the client.
    assert client_ip("10.0.0.1", "6.6.6.6, 203.0.113.5, 10.0.0.7", proxies) == "203.0.113.5"
    # A peer that is not a proxy: its own address, whatever it claims.
    assert client_ip("198.51.100.9", "6.6.6.6", proxies) == "198.51.100.9"
    assert client_ip("10.0.0.1", "6.6.6.6", []) == "10.0.0.1"  # no proxies configured
    # Garbage where the proxy's entry should be: the proxy's own address, nothing claimed.
    assert client_ip("10.0.0.1", "x" * 80, proxies) == "10.0.0.1"


def test_non_ascii_list_name_stays_a_valid_list_id():
    identity = ListIdentity("Notes: Ärzte", "n.example.com", "https://e.example", None)
    value = recipient_links(identity, Signer(["k" * 20]), 1).headers["List-Id"]
    assert value.isascii() and value.endswith(" <n.example.com>")
    assert value.startswith("=?utf-8?")
