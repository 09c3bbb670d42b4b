"""Signed tokens and the per-recipient list headers built from them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.domain.list_headers import ListIdentity, default_list_id, recipient_links
from newsletter.domain.tokens import InvalidToken, Purpose, Signer

KEY = "k" * 32


def test_round_trip_url_safe_and_short():
    token = Signer([KEY]).sign(Purpose.UNSUBSCRIBE, 123456789, send_id=42)
    assert re.fullmatch(r"[A-Za-z0-9_-]{44}", token)
    parsed = Signer([KEY]).verify(token, Purpose.UNSUBSCRIBE)
    assert (parsed.subscriber_id, parsed.send_id) == (123456789, 42)


def test_every_single_character_change_is_rejected():
    signer = Signer([KEY])
    token = signer.sign(Purpose.UNSUBSCRIBE, 7)
    for index in range(len(token)):
        replacement = "A" if token[index] != "A" else "B"
        with pytest.raises(InvalidToken):
            signer.verify(token[:index] + replacement + token[index + 1 :], Purpose.UNSUBSCRIBE)
    for cut in (1, 10, 43):
        with pytest.raises(InvalidToken):
            signer.verify(token[:cut], Purpose.UNSUBSCRIBE)


def test_purpose_is_bound():
    token = Signer([KEY]).sign(Purpose.PREFERENCES, 7)
    with pytest.raises(InvalidToken):
        Signer([KEY]).verify(token, Purpose.UNSUBSCRIBE)


def test_rotation_first_key_signs_all_verify():
    old = Signer(["old" * 8]).sign(Purpose.UNSUBSCRIBE, 7)
    rotated = Signer(["new" * 8, "old" * 8])
    assert rotated.verify(old, Purpose.UNSUBSCRIBE).subscriber_id == 7
    fresh = rotated.sign(Purpose.UNSUBSCRIBE, 7)
    with pytest.raises(InvalidToken):
        Signer(["old" * 8]).verify(fresh, Purpose.UNSUBSCRIBE)


def test_confirmation_expires_unsubscribe_does_not():
    signer = Signer([KEY])
    long_ago = datetime.now(UTC) - timedelta(days=400)
    confirm = signer.sign(Purpose.CONFIRM, 7, issued_at=long_ago)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(confirm, Purpose.CONFIRM, max_age=timedelta(days=7))
    unsubscribe = signer.sign(Purpose.UNSUBSCRIBE, 7, issued_at=long_ago)
    assert signer.verify(unsubscribe, Purpose.UNSUBSCRIBE).subscriber_id == 7


def test_list_headers_follow_rfc_8058_and_2919():
    identity = ListIdentity(
        name="Follicle Notes",
        list_id="follicle-notes.news.example.com",
        base_url="https://news.example.com",
        unsubscribe_mailbox="unsubscribe@example.com",
    )
    links = recipient_links(identity, Signer([KEY]), subscriber_id=5, send_id=9)
    headers = links.headers
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = headers["List-Unsubscribe"].split(", ")
    assert https == f"<{links.unsubscribe_url}>"
    assert links.unsubscribe_url == f"https://news.example.com/u/{links.unsubscribe_token}"
    assert (
        mailto == f"<mailto:unsubscribe@example.com?subject=unsubscribe-{links.unsubscribe_token}>"
    )
    assert headers["List-Id"] == "Follicle Notes <follicle-notes.news.example.com>"
    assert links.preferences_url.startswith("https://news.example.com/preferences/")


def test_list_id_default_and_quoting():
    assert default_list_id("Follicle Notes!", "https://news.example.com/x") == (
        "follicle-notes.news.example.com"
    )
    identity = ListIdentity("Notes, Inc.", "n.example.com", "https://e.example", None)
    links = recipient_links(identity, Signer([KEY]), 1)
    assert links.headers["List-Id"] == '"Notes, Inc." <n.example.com>'
    assert "mailto" not in links.headers["List-Unsubscribe"]


@pytest.mark.parametrize("key", ["k", "x" * 64, "long-" * 30, "clé-ünïcode"])
def test_mac_is_standard_hmac_sha256(key):
    """The primed HMAC must equal the standard library's, for short, block-sized and long
    keys: tokens already in readers' mailboxes depend on it."""
    import base64
    import hashlib
    import hmac

    token = Signer([key]).sign(Purpose.PREFERENCES, 4242, 17, datetime(2026, 3, 1, tzinfo=UTC))
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    body, mac = raw[:-16], raw[-16:]
    expected = hmac.new(key.encode(), b"v1" + body, hashlib.sha256).digest()[:16]
    assert mac == expected
