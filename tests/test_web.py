"""The subscriber web app, served by a real uvicorn on loopback, spoken to over real HTTP."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import eventually

from newsletter.domain.subscriber import Source, Status
from newsletter.domain.tokens import Purpose, Signer
from newsletter.services.subscribers import Context

CLI = Context(Source.CLI)
GMAIL_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def person(web):
    return web.store.add(
        "Reader.One@Example.com", name="Reader One", topics=["evidence"], context=CLI
    )


def post_one_click(web, token: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{web.url}/u/{token}", content=ONE_CLICK, headers=GMAIL_HEADERS, **kwargs)


def test_one_click_post_exactly_as_gmail_sends_it(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id, send_id=7)
    assert len(ONE_CLICK) == 26
    response = httpx.post(
        f"{web.url}/u/{token}",
        content=ONE_CLICK,
        headers={**GMAIL_HEADERS, "User-Agent": "Mozilla/5.0 (compatible; Gmail)"},
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert response.headers["referrer-policy"] == "same-origin"
    assert "You are unsubscribed" in response.text
    assert "Re***@example.com" in response.text  # masked, never the whole address
    assert web.store.get(person.email).status == Status.UNSUBSCRIBED
    event = web.store.events(person.id)[-1]
    assert (event.source, event.new_status, event.ip) == ("one-click", "unsubscribed", "127.0.0.1")
    assert event.user_agent == "Mozilla/5.0 (compatible; Gmail)"


def test_one_click_multipart_form_data(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id)
    response = httpx.post(f"{web.url}/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert response.status_code == 200
    assert web.store.get(person.email).status == Status.UNSUBSCRIBED


def test_post_is_idempotent_and_never_redirects(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id)
    first, second = post_one_click(web, token), post_one_click(web, token)
    assert (first.status_code, second.status_code) == (200, 200)
    assert not first.is_redirect and not second.is_redirect
    assert [e.new_status for e in web.store.events(person.id)] == ["active", "unsubscribed"]


def test_get_changes_nothing_and_offers_a_button(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id)
    for _ in range(3):  # link scanners fetch links, sometimes more than once
        response = httpx.get(f"{web.url}/u/{token}")
        assert response.status_code == 200
    assert '<form method="post"' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert "Re***@example.com" in response.text
    assert web.store.get(person.email).status == Status.ACTIVE
    assert len(web.store.events(person.id)) == 1


def test_the_pages_own_button_unsubscribes(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id)
    response = httpx.post(
        f"{web.url}/u/{token}",
        data={"List-Unsubscribe": "One-Click"},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 200
    assert web.store.events(person.id)[-1].source == "web-form"


def test_post_without_the_one_click_field_changes_nothing(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id)
    response = httpx.post(f"{web.url}/u/{token}", data={"something": "else"})
    assert response.status_code == 400
    assert web.store.get(person.email).status == Status.ACTIVE


def forgeries(web, person) -> list[str]:
    good = web.token(Purpose.UNSUBSCRIBE, person.id)
    flipped = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    return [
        good[:-3],  # truncated
        flipped,  # altered
        good + "x",  # extended
        Signer(["another-key-that-we-never-had"]).sign(Purpose.UNSUBSCRIBE, person.id),
        web.token(Purpose.PREFERENCES, person.id),  # right key, wrong purpose
        "not-a-token",
    ]


def test_forged_tokens_get_404_and_change_nothing(web, person):
    stranger = web.token(Purpose.UNSUBSCRIBE, person.id + 999)  # valid MAC, nobody
    stranger_page = post_one_click(web, stranger)
    assert stranger_page.status_code == 404
    for token in forgeries(web, person):
        for response in (httpx.get(f"{web.url}/u/{token}"), post_one_click(web, token)):
            assert response.status_code == 404
            assert response.text == stranger_page.text  # reveals nothing either way
    assert web.store.get(person.email).status == Status.ACTIVE
    assert len(web.store.events(person.id)) == 1


def test_key_rotation(sample, person, web):
    """A token signed with the old key still works once a new key signs."""
    old = Signer(["old-key-0123456789abcdef"]).sign(Purpose.UNSUBSCRIBE, person.id)
    rotated = Signer(["new-key-0123456789abcdef", "old-key-0123456789abcdef"])
    assert rotated.verify(old, Purpose.UNSUBSCRIBE).subscriber_id == person.id
    assert rotated.sign(Purpose.UNSUBSCRIBE, person.id) != old
    from conftest import running

    from newsletter.web.server import build_app

    with running(build_app(web.workspace, web.engine, rotated)) as url:
        assert (
            httpx.post(f"{url}/u/{old}", content=ONE_CLICK, headers=GMAIL_HEADERS).status_code
            == 200
        )
    assert post_one_click(web, old).status_code == 404  # the server without the old key


def test_concurrent_one_click_posts_for_one_subscriber(web, person):
    token = web.token(Purpose.UNSUBSCRIBE, person.id)
    barrier = threading.Barrier(10)
    codes: list[int] = []

    def click() -> None:
        barrier.wait()
        codes.append(post_one_click(web, token).status_code)

    threads = [threading.Thread(target=click) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 10
    assert [e.new_status for e in web.store.events(person.id)] == ["active", "unsubscribed"]


def test_preferences_topics_pause_unsubscribe_and_come_back(web, person):
    url = f"{web.url}/preferences/{web.token(Purpose.PREFERENCES, person.id)}"
    page = httpx.get(url)
    assert page.status_code == 200
    assert 'value="safety"' in page.text  # topics come from the snippet library's tags
    saved = httpx.post(url, data={"action": "topics", "topic": ["safety", "bogus"]})
    assert saved.status_code == 200 and "Your topics are saved." in saved.text
    assert web.store.get(person.email).topics == ["safety"]
    pausing = httpx.post(url, data={"action": "pause", "pause_days": "90"})
    assert "Paused. No newsletter until the date below." in pausing.text
    paused = web.store.get(person.email).paused_until
    assert paused and paused > datetime.now(UTC) + timedelta(days=89)
    assert f"Paused until {paused.day} {paused:%B %Y}." in pausing.text  # no leading zero
    assert httpx.post(url, data={"action": "pause", "pause_days": "7"}).status_code == 400
    httpx.post(url, data={"action": "resume"})
    assert web.store.get(person.email).paused_until is None
    httpx.post(url, data={"action": "unsubscribe"})
    assert web.store.get(person.email).status == Status.UNSUBSCRIBED
    back = httpx.post(url, data={"action": "resubscribe"})
    assert back.status_code == 200 and "link to confirm" in back.text
    assert web.store.get(person.email).status == Status.UNSUBSCRIBED  # until confirmed


def confirmation_link(web, subscriber_id: int) -> str:
    path = web.workspace.state_dir / "outbox" / "confirmations" / f"sub-{subscriber_id}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    return text.split("Confirm: ", 1)[1].split()[0]


def test_subscribe_then_confirm(web):
    form = httpx.get(f"{web.url}/subscribe")
    assert form.status_code == 200 and 'name="website"' in form.text
    response = httpx.post(
        f"{web.url}/subscribe",
        data={"email": "New.Person@Example.org", "name": "New", "topic": ["evidence"]},
    )
    assert response.status_code == 200 and "Check your inbox" in response.text
    record = eventually(lambda: web.store.find("new.person@example.org"))
    assert (record.status, record.topics) == (Status.PENDING, ["evidence"])
    link = eventually(lambda: confirmation_link(web, record.id))
    assert link.startswith(web.workspace.settings.base_url + "/confirm/")
    token = link.rsplit("/", 1)[1]
    shown = httpx.get(f"{web.url}/confirm/{token}")
    assert shown.status_code == 200 and "Yes, subscribe me" in shown.text
    confirmed = httpx.post(f"{web.url}/confirm/{token}")
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert web.store.get("new.person@example.org").status == Status.ACTIVE
    assert [e.new_status for e in web.store.events(record.id)] == ["pending", "active"]


def test_subscribe_answers_the_same_for_known_and_unknown(web, person):
    known = httpx.post(f"{web.url}/subscribe", data={"email": person.email})
    unknown = httpx.post(f"{web.url}/subscribe", data={"email": "someone@example.net"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert web.store.get(person.email).status == Status.ACTIVE  # nothing changed for them


def test_confirmation_resends_are_limited(web):
    httpx.post(f"{web.url}/subscribe", data={"email": "twice@example.org"})
    record = eventually(lambda: web.store.find("twice@example.org"))
    message = web.workspace.state_dir / "outbox" / "confirmations" / f"sub-{record.id}.eml"
    eventually(message.exists)
    message.unlink()
    httpx.post(f"{web.url}/subscribe", data={"email": "twice@example.org"})
    time.sleep(0.3)
    assert not message.exists()  # within the resend interval: nothing sent again


def test_honeypot_and_invalid_address(web):
    trap = httpx.post(f"{web.url}/subscribe", data={"email": "bot@example.org", "website": "x"})
    assert trap.status_code == 200
    time.sleep(0.3)
    assert web.store.find("bot@example.org") is None
    invalid = httpx.post(f"{web.url}/subscribe", data={"email": "nope"})
    assert invalid.status_code == 400 and "valid email address" in invalid.text


def test_subscribe_rate_limit_per_ip(web):
    limit = web.workspace.settings.web.subscribe_per_ip_per_hour
    codes = [
        httpx.post(f"{web.url}/subscribe", data={"email": f"p{i}@example.org"}).status_code
        for i in range(limit + 2)
    ]
    assert codes[:limit] == [200] * limit
    assert codes[limit:] == [429, 429]


def test_expired_confirmation_is_not_valid(web):
    record = web.store.add("late@example.org", status=Status.PENDING, context=CLI)
    old = web.signer.sign(
        Purpose.CONFIRM, record.id, issued_at=datetime.now(UTC) - timedelta(days=8)
    )
    assert httpx.get(f"{web.url}/confirm/{old}").status_code == 404
    assert web.store.get("late@example.org").status == Status.PENDING


def test_healthz(web):
    response = httpx.get(f"{web.url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_topics_are_offered_by_their_labels_with_descriptions(web, person):
    url = f"{web.url}/preferences/{web.token(Purpose.PREFERENCES, person.id)}"
    for page in (httpx.get(url).text, httpx.get(f"{web.url}/subscribe").text):
        assert 'value="expectations"' in page  # the form still posts the tag
        assert "> Realistic expectations <small>How much change to expect" in page
        assert "> expectations<" not in page


def test_the_not_found_page_offers_a_way_forward(web):
    page = httpx.get(f"{web.url}/u/{'A' * 44}")
    assert page.status_code == 404 and 'href="/archive/"' in page.text
    assert httpx.get(f"{web.url}/archive/").status_code == 200
