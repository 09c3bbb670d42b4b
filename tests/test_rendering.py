"""Rendering once and personalizing by substitution; the text twin."""

from __future__ import annotations

import re

import mjml
import pytest

from newsletter.domain.markdown import render_markdown
from newsletter.domain.personalize import (
    Recipient,
    RenderedIssue,
    personalize,
    placeholder,
)
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

URL_IN_TEXT = re.compile(r"https?://\S+")


@pytest.fixture
def builder(sample):
    return Builder(open_workspace(sample.root))


def reader(first_name: str | None = "Ada", token: str = "tok123") -> Recipient:
    return Recipient(
        email="ada@example.com",
        first_name=first_name,
        unsubscribe_url=f"https://news.example.com/u/{token}?a=1&b=2",
        preferences_url=f"https://news.example.com/preferences/{token}",
    )


def test_placeholders_survive_mjml_in_text_and_attributes():
    url, name = placeholder("unsubscribe_url"), placeholder("first_name", "there")
    source = (
        "<mjml><mj-body><mj-section><mj-column>"
        f'<mj-text>Hi {name} <a href="{url}">leave</a></mj-text>'
        f'<mj-button href="{url}">Leave</mj-button>'
        "</mj-column></mj-section></mj-body></mjml>"
    )
    html = mjml.mjml2html(source, disable_comments=True, fonts={})
    assert html.count(f'href="{url}"') == 2
    assert f"Hi {name}" in html


def test_personalize_fills_every_placeholder_escaping_html(builder):
    rendered = builder.build("2026-12-welcome").rendered
    message = personalize(rendered, reader(first_name="O'Neil & <Sons>"))
    assert "⟦" not in message.html and "⟦" not in message.text
    assert 'href="https://news.example.com/u/tok123?a=1&amp;b=2"' in message.html
    assert "Hi O&#x27;Neil &amp; &lt;Sons&gt;," in message.html
    assert "Hi O'Neil & <Sons>," in message.text
    assert "https://news.example.com/u/tok123?a=1&b=2" in message.text
    assert "https://news.example.com/preferences/tok123" in message.text


def test_first_name_falls_back(builder):
    rendered = builder.build("2026-12-welcome").rendered
    for missing in (None, "", "   "):
        message = personalize(rendered, reader(first_name=missing))
        assert "Hi there," in message.text
        assert "Hi there," in message.html


def test_personalize_is_substitution_into_one_render(builder):
    rendered = builder.build("2026-12-welcome").rendered
    one, two = personalize(rendered, reader(token="aaa")), personalize(rendered, reader(token="b"))
    # Everything except the recipient's values is byte-identical to the single render.
    assert one.html.replace("aaa", "b") == two.html
    assert rendered.html.count("⟦unsubscribe_url⟧") == one.html.count("/u/aaa?")


def test_content_hash_is_stable_and_tracks_content(builder, sample):
    first = builder.build("2026-12-welcome").rendered
    assert builder.build("2026-12-welcome").rendered.content_hash == first.content_hash
    path = sample.root / "issues" / "2026-12-welcome.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    assert builder.build("2026-12-welcome").rendered.content_hash != first.content_hash


def test_rendered_issue_parts(builder):
    build = builder.build("2027-01-evidence")
    rendered = build.rendered
    assert rendered.subject == build.issue.meta.subject.strip()
    assert rendered.preheader and rendered.preheader in rendered.html  # hidden preheader
    assert "display:none" in rendered.html.split(rendered.preheader)[0][-400:]
    html_names, text_names = rendered.placeholders()
    assert {"unsubscribe_url", "preferences_url", "first_name"} <= html_names
    assert {"unsubscribe_url", "preferences_url", "first_name"} <= text_names


def test_footer_in_html_and_text(builder):
    message = personalize(builder.build("2026-12-welcome").rendered, reader())
    for body in (message.html, message.text):
        assert "not medical advice" in body
        assert "12 Example Street" in body
        assert "You get this email because you subscribed" in body
    assert ">Unsubscribe</a>" in message.html
    assert ">Update your preferences</a>" in message.html


def test_plain_text_is_wrapped_and_not_scraped_html(builder):
    text = builder.build("2027-01-evidence").probe.text
    assert "<" not in text.replace("<Sons>", "")
    for line in text.splitlines():
        if not URL_IN_TEXT.search(line):
            assert len(line) <= 78, line


def test_markdown_text_structure():
    source = (
        "# Title\n\nA paragraph with a [link](https://example.org/a?x=1) and **bold**.\n\n"
        "## Section\n\n- one\n- two\n\n1. first\n2. second\n"
    )
    text = render_markdown(source).text
    assert text == (
        "Title\n=====\n\n"
        "A paragraph with a link (https://example.org/a?x=1) and *bold*.\n\n"
        "Section\n-------\n\n"
        "- one\n- two\n\n"
        "1. first\n2. second"
    )


def test_unknown_placeholder_name_is_refused():
    with pytest.raises(ValueError, match="unknown placeholder"):
        placeholder("nickname")


def test_rendered_issue_create_hashes_all_parts():
    a = RenderedIssue.create("s", "sub", "pre", "<p>x</p>", "x")
    b = RenderedIssue.create("s", "sub", "pre2", "<p>x</p>", "x")
    assert a.content_hash != b.content_hash
