"""Tables read well in an 80-column terminal: nothing wider, no header cut short, no word
broken in the middle."""

from __future__ import annotations

import re

import pytest

from newsletter.cli.app import out


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setattr(out, "width", 80)


def assert_fits(text: str, words: list[str]) -> None:
    lines = text.splitlines()
    assert lines, "nothing printed"
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert "…" not in text, text  # a header or cell cut short
    tokens = set(re.findall(r"[\w-]+", text))
    for word in words:
        assert word in tokens, f"{word!r} broken or missing:\n{text}"


def test_snippets_list_fits_80_columns(cli, narrow):
    result = cli("snippets", "list")
    assert_fits(result.out, ["how-microneedling-works", "treatments", "consultation", "mechanism"])


def test_sends_and_issues_lists_fit_80_columns(sending, cli, narrow):
    sending.add(3)
    sending.run("outbox")
    sends = cli("sends", "list").out
    assert_fits(sends, ["status", "transport", "outcomes", "created", "sent", "2026-12-welcome"])
    issues = cli("issues", "list").out
    assert_fits(issues, ["2026-12-welcome", "2027-01-evidence", "checks", "sending", "delivered"])


def test_subscribers_and_stats_fit_80_columns(sending, cli, narrow):
    sending.add(3, topics=["evidence", "safety"])
    sending.run("outbox")
    assert_fits(cli("subscribers", "list").out, ["reader0", "example", "active", "evidence"])
    assert_fits(cli("stats").out, ["deliv", "bounce", "clicks", "2026-12-welcome"])
