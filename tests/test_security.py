"""Attacks and operator mistakes, scripted: secrets that must never be printed, stored or
sent back, however they arrive. (More of the security review lands here as it is fixed.)"""

from __future__ import annotations

import json

from conftest import eventually
from sendgrid_standin import SendGridStandIn

from newsletter.domain.delivery import SendStatus
from newsletter.errors import ExitStatus
from newsletter.infra.redaction import redact, redact_data
from newsletter.services.ledger import Ledger

ISSUE = "2026-12-welcome"
KEY = "SG.a-real-looking-key-0123"


def test_a_sendgrid_key_with_a_trailing_newline_is_used_trimmed_and_never_shown(
    sending, cli, monkeypatch
):
    sending.add(2)
    with SendGridStandIn(api_key=KEY) as standin:
        monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", standin.url)
        monkeypatch.setenv("SENDGRID_API_KEY", KEY + "\n")  # as $(cat keyfile) gives
        result = cli("send", ISSUE, "--yes", "--transport", "sendgrid", "--json")
        assert standin.accepted_count == 1
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"]["sent"] == 2
    assert KEY not in result.out + result.err


def test_a_key_with_white_space_inside_is_a_settings_error_that_hides_it(sending, cli, monkeypatch):
    sending.add(1)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.abc def")
    result = cli("send", ISSUE, "--yes", "--transport", "sendgrid", "--json")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "environment variable SENDGRID_API_KEY" in result.err
    assert "abc def" not in result.err + result.out
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.ok")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "first-key-0123456789,second\x01key-0123456789")
    result = cli("send", ISSUE, "--yes")
    assert result.code == ExitStatus.INPUT_ERROR and "NEWSLETTER_SECRET_KEY" in result.err
    assert "second" not in result.err


def test_a_database_password_is_never_echoed(cli, monkeypatch):
    # The review's case: a malformed URL (no colon after the scheme) with a password.
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql+psycopg//postgres:PW-s3cret@h/x")
    result = cli("subscribers", "count", "--json")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "PW-s3cret" not in result.out + result.err
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql://postgres:PW-s3cret@127.0.0.1:9/x")
    result = cli("subscribers", "count", "--json")
    assert result.code == ExitStatus.UNAVAILABLE
    assert "PW-s3cret" not in result.out + result.err


def test_a_database_password_in_the_file_is_refused(sample, cli):
    line = sample.edit(
        "newsletter.toml",
        '# database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/newsletter"',
        'database_url = "postgresql://news:hunter22@127.0.0.1/newsletter"',
    )
    result = cli("issues", "list")
    assert result.code == ExitStatus.INPUT_ERROR
    assert f"newsletter.toml:{line}: database_url: a password does not belong" in result.err
    assert "hunter22" not in result.err


def test_stored_reasons_and_json_output_pass_through_redaction(sending, cli, monkeypatch):
    sending.add(1)
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    monkeypatch.setenv("NEWSLETTER_SMTP__PASSWORD", "smtp-pass-9876")
    from newsletter.services.sending import create_send, plan_send

    record = create_send(
        Ledger(sending.engine), plan_send(sending.workspace, sending.engine, ISSUE)
    )
    Ledger(sending.engine).set_status(
        record.id,
        SendStatus.PAUSED,
        f"provider said: bad key {KEY}, login smtp-pass-9876, db postgresql://u:pw123@h/db",
    )
    stored = Ledger(sending.engine).get(record.id).status_reason or ""
    assert KEY not in stored and "smtp-pass-9876" not in stored and "pw123" not in stored
    shown = cli("sends", "show", str(record.id), "--json")
    assert KEY not in shown.out and "[redacted]" in shown.out


def test_redaction_covers_every_configured_secret_and_url_passwords(monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "old-signing-key-0123, new-signing-key-4567")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql://app:db-pass-1@db/news")
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__INBOUND_SECRET", "inbound-path-secret-0123")
    text = (
        "keys old-signing-key-0123 new-signing-key-4567 db-pass-1 smtp://me:pw@host "
        "/webhooks/inbound/inbound-path-secret-0123"
    )
    assert redact(text) == (
        "keys [redacted] [redacted] [redacted] smtp://me:***@host /webhooks/inbound/[redacted]"
    )
    assert redact_data({"a": ["new-signing-key-4567"], "b": 3}) == {"a": ["[redacted]"], "b": 3}


def test_every_response_carries_the_security_headers(web):
    import httpx

    for method, path in (("DELETE", "/u/abc"), ("PUT", "/subscribe"), ("GET", "/nowhere")):
        response = httpx.request(method, web.url + path)
        assert response.status_code in (404, 405), (method, path)
        assert response.headers["referrer-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_access_log_shortens_tokens(web, caplog):
    import logging

    import httpx

    from newsletter.domain.subscriber import Source
    from newsletter.domain.tokens import Purpose
    from newsletter.services.subscribers import Context

    subscriber = web.store.add("reader@example.com", context=Context(Source.CLI)).id
    token = web.token(Purpose.PREFERENCES, subscriber)

    def logged(count: int) -> list[str]:
        # The server thread writes the line after the answer has gone out: wait for it.
        lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.access"]
        return lines if len(lines) >= count else []

    with caplog.at_level(logging.INFO, logger="newsletter.access"):
        assert httpx.get(f"{web.url}/preferences/{token}").status_code == 200
        lines = eventually(lambda: logged(1))
    assert any(f"/preferences/{token[:4]}… 200" in line for line in lines), lines
    assert not any(token in line for line in lines)
    secret = "a-webhook-secret-guessed-wrong"
    with caplog.at_level(logging.INFO, logger="newsletter.access"):
        httpx.post(f"{web.url}/webhooks/inbound/{secret}", data={"email": "x"})
        httpx.get(f"{web.url}/c/{token}")
        lines = eventually(lambda: logged(3))
    assert not any(secret in line or token in line for line in lines), lines


def _pending(web, address: str) -> int:
    from newsletter.domain.subscriber import Source, Status
    from newsletter.services.subscribers import Context

    return web.store.add(address, status=Status.PENDING, context=Context(Source.CLI)).id


def test_link_scanners_cannot_confirm_a_subscription(web):
    import httpx

    from newsletter.domain.tokens import Purpose

    subscriber = _pending(web, "victim@example.com")
    token = web.token(Purpose.CONFIRM, subscriber)
    for fetch in (httpx.get, httpx.head):
        assert fetch(f"{web.url}/confirm/{token}").status_code == 200
    assert web.store.get("victim@example.com").status == "pending"
    assert httpx.post(f"{web.url}/confirm/{token}").status_code == 200
    assert web.store.get("victim@example.com").status == "active"


def test_head_never_changes_state(web):
    import httpx

    from newsletter.domain.subscriber import Source
    from newsletter.domain.tokens import Purpose
    from newsletter.services.subscribers import Context

    reader = web.store.add("reader@example.com", context=Context(Source.CLI)).id
    token = web.token(Purpose.UNSUBSCRIBE, reader)
    body = {"List-Unsubscribe": "One-Click"}
    assert httpx.request("HEAD", f"{web.url}/u/{token}", data=body).status_code == 200
    assert web.store.get("reader@example.com").status == "active"
    form = {"email": "stranger@example.com", "name": "S"}
    httpx.request("HEAD", f"{web.url}/subscribe", data=form)
    import time

    time.sleep(0.5)  # the subscribe form answers first and works after: give it the time
    assert web.store.find("stranger@example.com") is None


def test_csv_export_neutralizes_formulas_and_reads_back_the_same(sending, cli, tmp_path):
    import csv

    from newsletter.domain.subscriber import Source
    from newsletter.services.subscribers import Context

    names = ['=HYPERLINK("http://evil","x")', "+1+1", "-1+1", "@SUM(1+1)", "=cmd|' /C calc'!A0"]
    for i, name in enumerate(names):
        sending.store.add(f"reader{i}@example.com", name=name, context=Context(Source.CLI))
    sending.store.add("=1+1@example.com", name="Plain", context=Context(Source.CLI))
    exported = tmp_path / "list.csv"
    assert cli("subscribers", "export", str(exported)).code == 0
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert {r["name"] for r in rows} >= {"'" + n for n in names}
    raw = cli("subscribers", "export", "--raw")
    assert '"=HYPERLINK(""http://evil"",""x"")"' in raw.out
    # Read back into an empty list elsewhere: the names are what was stored.
    monkey_db = tmp_path / "other.db"
    imported = cli_in_db(cli, monkey_db, "subscribers", "import", str(exported), "--json")
    assert imported.code == 0, imported.err
    listed = cli_in_db(cli, monkey_db, "subscribers", "list", "--json", "--limit", "100")
    assert {s["name"] for s in json.loads(listed.out)} == {*names, "Plain"}
    assert "=1+1@example.com" in {s["email"] for s in json.loads(listed.out)}


def cli_in_db(cli, path, *args: str):
    import os

    before = os.environ["NEWSLETTER_DATABASE_URL"]
    os.environ["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{path}"
    try:
        return cli(*args)
    finally:
        os.environ["NEWSLETTER_DATABASE_URL"] = before


def _answer_to(url: str, head: str, chunks) -> str:  # type: ignore[no-untyped-def]
    """Post over a raw socket, stop sending once the server answers, and read the answer:
    a client library that keeps writing after a refusal may lose it to the reset."""
    import select
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except OSError:
            pass
    return answer.decode("latin-1")


def test_bodies_are_capped_before_any_parsing(web):
    big = 10 * 1024 * 1024
    head = (
        f"POST /u/{'A' * 44} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {big}\r\n\r\n"
    )
    # Refused on the declared length alone, before a byte of the body is read.
    answer = _answer_to(web.url, head, [])
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "referrer-policy: same-origin" in answer.lower()

    head = (
        "POST /subscribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = [b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(200)] + [b"0\r\n\r\n"]
    answer = _answer_to(web.url, head, chunks)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_a_slow_body_is_cut_off(web):
    import socket
    import time

    from conftest import running

    from newsletter.web.server import build_app

    web.workspace.settings.web.body_timeout_seconds = 1.0
    with running(build_app(web.workspace, web.engine, web.signer)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nemail=a"
            )
            started = time.monotonic()
            answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < 5


def test_cross_site_form_posts_are_refused_one_click_is_not(web):
    import httpx

    from newsletter.domain.subscriber import Source
    from newsletter.domain.tokens import Purpose
    from newsletter.services.subscribers import Context

    form = {"email": "someone@example.com"}
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        assert httpx.post(f"{web.url}/subscribe", data=form, headers=headers).status_code == 403
    reader = web.store.add("reader@example.com", context=Context(Source.CLI)).id
    token = web.token(Purpose.UNSUBSCRIBE, reader)
    one_click = httpx.post(f"{web.url}/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert web.store.get("reader@example.com").status == "unsubscribed"
    same_site = httpx.post(f"{web.url}/subscribe", data=form, headers={"origin": web.url})
    assert same_site.status_code == 200


def test_an_imported_name_with_a_line_break_is_cleaned_not_lost(sending, cli, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b'email,name\r\nann@example.com,"Ann\r\nLee"\r\nbob@example.com,"Bob\t\xe2\x80\xaeX"\r\n'
    )
    result = cli("subscribers", "import", str(path), "--json")
    assert result.code == 0, result.err
    assert sending.store.get("ann@example.com").name == "Ann Lee"
    assert sending.store.get("bob@example.com").name == "Bob X"


def test_erasure_leaves_the_address_nowhere(sample, tmp_path, monkeypatch, cli):
    """SQLite: grep the database file, its WAL and every file under the state folder."""
    from smtp_server import SmtpServer

    from newsletter.domain.subscriber import Source
    from newsletter.infra.db.engine import connect
    from newsletter.services.subscribers import Context, SubscriberStore

    url = f"sqlite:///{tmp_path / 'state' / 'news.db'}"
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    monkeypatch.setenv("NEWSLETTER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "a-signing-key-for-this-test-0123")
    gone = "erase.me@example.com"
    with SmtpServer() as server, connect(url) as engine:
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", server.host)
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(server.port))
        monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")
        store = SubscriberStore(engine)
        store.add(gone, name="Erase Me", context=Context(Source.CLI))
        store.add("stay@example.com", context=Context(Source.CLI))
        server.reject(gone, 550, f"5.1.1 <{gone}>: Recipient address rejected")
        result = cli("send", ISSUE, "--yes", "--transport", "smtp", "--json")
        assert json.loads(result.out)["counts"]["failed"] == 1
        [failed] = json.loads(cli("sends", "show", "1", "--json").out)["failed"]
        assert failed["error"] == "550 5.1.1 <[recipient]>: Recipient address rejected"
        assert cli("send", ISSUE, "--to", gone, "--transport", "outbox").code == 0
        assert cli("subscribers", "erase", gone, "--yes").code == 0
    needles = (gone.encode(), b"Erase Me")
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path


def _serve_with(web, **settings):
    from conftest import running

    from newsletter.web.server import build_app

    for key, value in settings.items():
        setattr(web.workspace.settings.web, key, value)
    return running(build_app(web.workspace, web.engine, web.signer))


def test_spoofed_forwarded_for_does_not_get_around_the_per_ip_limit(web):
    import httpx

    codes = []
    with _serve_with(web, subscribe_per_ip_per_hour=3) as url:
        for i in range(8):
            response = httpx.post(
                f"{url}/subscribe",
                data={"email": f"bomb{i}@example.com"},
                headers={"x-forwarded-for": f"198.51.100.{i}"},
            )
            codes.append(response.status_code)
    assert codes == [200, 200, 200, 429, 429, 429, 429, 429]


def test_a_global_ceiling_on_confirmation_mails(web):
    import time
    from ipaddress import ip_network

    import httpx

    with _serve_with(
        web, trusted_proxies=[ip_network("127.0.0.1/32")], confirm_mails_per_hour=3
    ) as url:
        for i in range(6):
            httpx.post(
                f"{url}/subscribe",
                data={"email": f"many{i}@example.com"},
                headers={"x-forwarded-for": f"198.51.100.{i}"},
            )
        time.sleep(1)  # the work happens after the answer
    mails = list((web.workspace.state_dir / "outbox" / "confirmations").glob("*.eml"))
    assert len(mails) == 3


def test_coming_back_from_an_unsubscribe_link_needs_a_confirmation_mail(web):
    import re

    import httpx

    from newsletter.domain.subscriber import Source
    from newsletter.domain.tokens import Purpose
    from newsletter.services.subscribers import Context

    person = web.store.add("left@example.com", context=Context(Source.CLI))
    unsubscribe = web.token(Purpose.UNSUBSCRIBE, person.id)
    page = httpx.get(f"{web.url}/u/{unsubscribe}").text
    httpx.post(f"{web.url}/u/{unsubscribe}", data={"List-Unsubscribe": "One-Click"})
    preferences = re.search(r'href="[^"]*(/preferences/[^"]+)"', page).group(1)
    import email
    import email.policy
    import time

    time.sleep(1.1)  # tokens count in seconds: one from the unsubscribe's second is refused
    answer = httpx.post(f"{web.url}{preferences}", data={"action": "resubscribe"})
    assert answer.status_code == 200
    assert web.store.get("left@example.com").status == "unsubscribed"
    mail = web.workspace.state_dir / "outbox" / "confirmations" / f"sub-{person.id}.eml"
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    link = re.search(r"/confirm/([A-Za-z0-9_-]{20,})", text).group(1)
    assert httpx.post(f"{web.url}/confirm/{link}").status_code == 200
    assert web.store.get("left@example.com").status == "active"
    kinds = [event.kind for event in web.store.events(person.id)]
    assert kinds.index("resubscribe requested") < len(kinds) - 1  # then the confirmation


def test_a_name_written_as_an_encoded_word_stays_literal_text(sending):
    import email
    import email.policy
    from datetime import UTC, datetime

    from newsletter.domain.message import MessageTemplate, Sender
    from newsletter.domain.personalize import Recipient
    from newsletter.services.build import Builder

    trick = "=?utf-8?q?X=0D=0ABcc:_evil@example.com?="
    build = Builder(sending.workspace).build(ISSUE)
    raw = MessageTemplate(build.rendered, Sender("n@example.com", "N"), date=datetime.now(UTC))
    data = raw.render(Recipient("ann@example.com", "Ann", name=trick), "<id@example.com>")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["To"].addresses[0].display_name == trick
    assert message["Bcc"] is None


def test_a_new_single_key_warns_that_old_links_break(sending, cli, monkeypatch):
    from sqlalchemy import update

    from newsletter.infra.db.schema import meta

    sending.add(1)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "old-signing-key-0123456789")
    assert cli("send", ISSUE, "--yes").code == 0
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "new-signing-key-0123456789")
    first = cli("send", ISSUE, "--dry-run", "--again")
    # The new key's first use is now; the send before it was signed with the old key.
    with sending.engine.begin() as connection:
        connection.execute(
            update(meta)
            .where(meta.c.key.like("signing_key:%"))
            .values(value="2099-01-01T00:00:00+00:00")
        )
    warned = cli("send", ISSUE, "--dry-run", "--again")
    assert "lists one key" in warned.err and "1 send(s) went out before it" in warned.err
    assert "new-signing-key" not in warned.err + first.err
    monkeypatch.setenv(
        "NEWSLETTER_SECRET_KEY", "new-signing-key-0123456789,old-signing-key-0123456789"
    )
    assert "lists one key" not in cli("send", ISSUE, "--dry-run", "--again").err


def test_forged_truncated_altered_and_cross_purpose_tokens_all_get_404(web):
    import httpx

    from newsletter.domain.subscriber import Source
    from newsletter.domain.tokens import Purpose, Signer
    from newsletter.services.subscribers import Context

    person = web.store.add("target@example.com", context=Context(Source.CLI)).id
    good = web.token(Purpose.UNSUBSCRIBE, person)
    altered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    other_key = Signer(["another-key-0123456789abcdef"]).sign(Purpose.UNSUBSCRIBE, person)
    wrong_purpose = web.token(Purpose.PREFERENCES, person)
    for bad in ("A" * 44, good[:30], altered, other_key, wrong_purpose, "%2e%2e"):
        for method, path in (("GET", "/u/"), ("POST", "/u/"), ("POST", "/confirm/")):
            response = httpx.request(
                method, f"{web.url}{path}{bad}", data={"List-Unsubscribe": "One-Click"}
            )
            assert response.status_code == 404, (bad, method, path)
    assert web.store.get("target@example.com").status == "active"


def test_a_bad_content_length_is_400_but_a_routes_own_value_error_is_not(web):
    import httpx
    from conftest import running
    from starlette.applications import Starlette
    from starlette.routing import Route

    from newsletter.web.middleware import Guard

    head = "POST /subscribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: abc\r\n\r\n"
    assert _answer_to(web.url, head, []).startswith("HTTP/1.1 400")

    def broken(request):  # a handler's bug, not the client's request
        raise ValueError("something inside went wrong")

    app = Starlette(routes=[Route("/x", broken)])
    app.add_middleware(Guard)
    with running(app) as url:
        assert httpx.get(f"{url}/x").status_code == 500
