"""What a subscriber sees around the content: the preheader and its padding, "view online"."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from newsletter.domain.personalize import personalize
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder, sample_recipient

ARCHIVE = "https://news.follicle-notes.example.com/archive/t/"


class HiddenText(HTMLParser):
    """The text inside the first display:none element (the preheader block)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.text = ""
        self.done = False

    def handle_starttag(self, tag, attrs):
        style = dict(attrs).get("style") or ""
        if self.depth:
            self.depth += 1
        elif not self.done and "display:none" in style.replace(" ", ""):
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1
            self.done = self.depth == 0

    def handle_data(self, data):
        if self.depth:
            self.text += data


@pytest.fixture
def build(sample):
    sample.snippet("a", body="Body text that must not show in the inbox preview.")
    sample.issue("t", ["a"], preheader="A short teaser for the inbox.")
    return Builder(open_workspace(sample.root)).build("t")


def test_the_preheader_is_followed_by_hidden_padding(build):
    parser = HiddenText()
    parser.feed(build.rendered.html)
    hidden = parser.text
    assert hidden.startswith("A short teaser for the inbox.")
    padding = hidden.removeprefix("A short teaser for the inbox.")
    assert len(padding) >= 150
    assert set(padding) <= {"\u034f", "\u200c", "\u00a0"}  # &#847; &zwnj; &nbsp;
    assert "Body text" not in hidden


def test_a_view_online_link_to_the_archive_page_comes_first(build):
    html = build.rendered.html
    body = html.split("<body", 1)[1]
    first_link = re.search(r'<a [^>]*href="([^"]+)"[^>]*>([^<]+)</a>', body)
    assert first_link is not None
    href, label = first_link.group(1).replace("&amp;", "&"), first_link.group(2)
    assert href.startswith(ARCHIVE + "?utm_source=follicle-notes") and "utm_campaign=t" in href
    assert label == "View this email in your browser"
    assert body.index(label) < body.index("A test issue</h1>")
    assert f"View online: {ARCHIVE}?utm_source" in build.rendered.text


def test_the_footer_still_says_why_the_reader_gets_it(build, sample):
    message = personalize(build.rendered, sample_recipient(open_workspace(sample.root)))
    for body in (message.html, message.text):
        assert "You get this email because you subscribed" in body
        assert "/u/PREVIEW" in body and "/preferences/PREVIEW" in body
