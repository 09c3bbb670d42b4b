"""Own click tracking (`[tracking] clicks`): links in a send go through `/c/`, which counts
the click and redirects only to the signed target."""

from __future__ import annotations

import email
import email.policy
import re
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from sqlalchemy import select

from newsletter.domain.subscriber import Source
from newsletter.infra.db.schema import provider_events
from newsletter.services.stats import send_stats
from newsletter.services.subscribers import Context


def body_parts(path) -> tuple[str, str]:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    return html, text


@pytest.fixture
def tracked(web, sending, monkeypatch):
    """One subscriber, one outbox send with click tracking on; its message's parts."""
    monkeypatch.setenv("NEWSLETTER_TRACKING__CLICKS", "true")
    sid = web.store.add("reader@example.com", context=Context(Source.CLI)).id
    _, record = sending.run("outbox")
    html, text = body_parts(sending.outbox / f"send-{record.id}" / f"sub-{sid}.eml")
    return record.id, sid, html, text


def clicks_stored(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(provider_events)).all()


def links_in(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]


def test_links_are_rewritten_and_a_click_is_counted_then_redirected(web, tracked):
    send_id, sid, html, text = tracked
    base = web.workspace.settings.base_url
    tracked_links = [h for h in links_in(html) if h.startswith(f"{base}/c/")]
    assert tracked_links, "no tracked link in the HTML part"
    assert not [h for h in links_in(html) if h.startswith("https://doi.org")], "untracked link"
    assert f"{base}/c/" in text and "counts the clicks" in " ".join(text.split())
    assert "counts the clicks" in " ".join(html.split())
    link = tracked_links[0]
    target = parse_qs(urlsplit(link).query)["u"][0]
    path = urlsplit(link).path + "?" + urlsplit(link).query
    answer = httpx.get(web.url + path, follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == target
    [row] = clicks_stored(web.engine)
    assert (row.kind, row.subscriber_id, row.send_id, row.detail) == ("click", sid, send_id, target)
    stats = send_stats(web.engine, send_id)
    assert stats.clicks == 1 and stats.top_links == [(target, 1)]
    # The unsubscribe and preferences links stay direct.
    assert any(h.startswith(f"{base}/u/") for h in links_in(html))


def test_forged_tampered_and_foreign_links_are_404_and_count_nothing(web, tracked):
    _, _, html, _ = tracked
    base = web.workspace.settings.base_url
    link = next(h for h in links_in(html) if h.startswith(f"{base}/c/"))
    parts = urlsplit(link)
    _, _, token, tag = parts.path.split("/")
    target = parse_qs(parts.query)["u"][0]
    forged_token = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    cases = [
        f"/c/{forged_token}/{tag}?u={quote(target, safe='')}",  # forged token
        f"/c/{token}/{tag}?u={quote('https://evil.example/', safe='')}",  # tampered target
        f"/c/{token}/{tag}?u={quote(target + 'x', safe='')}",  # one character more
        f"/c/{token}/AAAAAAAAAAAAAAAA?u={quote(target, safe='')}",  # forged tag
        f"/c/{token}/{tag}",  # no target
    ]
    for path in cases:
        assert httpx.get(web.url + path, follow_redirects=False).status_code == 404, path
    # A link checker's HEAD leads on without counting.
    assert httpx.head(web.url + parts.path + "?" + parts.query).status_code == 302
    assert clicks_stored(web.engine) == []


def test_without_tracking_links_are_direct_and_the_footer_says_nothing(web, sending):
    sid = web.store.add("reader@example.com", context=Context(Source.CLI)).id
    _, record = sending.run("outbox")
    html, text = body_parts(sending.outbox / f"send-{record.id}" / f"sub-{sid}.eml")
    assert "/c/" not in html and "/c/" not in text
    assert "counts the clicks" not in " ".join(html.split())


def test_test_sends_lead_on_without_counting(web, sending, cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_TRACKING__CLICKS", "true")
    result = cli("send", "2026-12-welcome", "--to", "me@example.com", "--json")
    assert result.code == 0, result.err
    [message] = sorted((sending.outbox).glob("test-*/*.eml"))
    html, _ = body_parts(message)
    base = web.workspace.settings.base_url
    link = next(h for h in links_in(html) if h.startswith(f"{base}/c/"))
    parts = urlsplit(link)
    answer = httpx.get(f"{web.url}{parts.path}?{parts.query}", follow_redirects=False)
    assert answer.status_code == 302
    assert clicks_stored(web.engine) == []
