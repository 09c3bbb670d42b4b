"""The plain-text part: each URL once, references instead of URLs mid-sentence, a visible
heading hierarchy, *emphasis*, lines wrapped at 72 columns."""

from __future__ import annotations

import re

import pytest

from newsletter.domain.markdown import render_markdown
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

URL = re.compile(r"https?://[^\s<>()\"]+[^\s<>()\".,;:!?'\]]")
DOI = "https://doi.org/10.1007/s13555-021-00653-2"
GUIDE = "https://www.nhs.uk/conditions/hair-loss/"
OWN = "https://news.follicle-notes.example.com/guide"
NBSP = "\u00a0"

BODY = f"""\
Reviews are cautious ([English et al., 2022]({DOI})). The *NHS* has [a page on
hair loss]({GUIDE}), and we wrote [a guide]({OWN}); write to [the
editors](mailto:editors@example.com) or see <{GUIDE}>.

## What the skin does next

Each **pinprick** starts a repair. Our [guide]({OWN}) again.

### Smaller point

Text.
"""


@pytest.fixture
def text(sample) -> str:
    sample.snippet(
        "a",
        title="How it works",
        body=BODY,
        sources=f'\n  - title: "English 2022"\n    url: {DOI}',
    )
    sample.issue("t", ["a"])
    return Builder(open_workspace(sample.root)).build("t").rendered.text


@pytest.mark.parametrize("slug", ["2026-12-welcome", "2027-01-evidence"])
def test_every_url_is_given_once_in_the_sample_issues(sample, slug):
    text = Builder(open_workspace(sample.root)).build(slug).rendered.text
    urls = URL.findall(text)
    assert urls and len(urls) == len(set(urls)), [u for u in urls if urls.count(u) > 1]


def test_foreign_links_carry_no_utm_in_the_text(text):
    foreign = [u for u in URL.findall(text) if "follicle-notes" not in u]
    assert foreign and not [u for u in foreign if "utm_" in u]


def test_links_become_numbered_references_listed_at_the_end(text):
    prose = text.split("\nSources\n-------\n", 1)[0]
    assert f"(English et al., 2022{NBSP}[1])." in prose
    assert f"a page on\nhair loss{NBSP}[2]" in prose
    assert "or see [2]." in prose  # a bare URL too: it is in the list already
    assert f"a guide{NBSP}[3];" in prose and f"Our guide{NBSP}[3] again." in prose
    assert "write to the editors\n(editors@example.com)" in prose  # an address stays inline
    assert DOI not in prose and OWN not in prose
    links = text.split("\nLinks\n-----\n", 1)[1]
    assert f"[2] {GUIDE}\n" in links
    assert f"[3] {OWN}?utm_source=follicle-notes&utm_medium=email&utm_campaign=t\n" in links
    assert f"[1] English 2022\n    {DOI}\n" in text


def test_no_nested_parentheses_around_a_citation(text):
    assert not re.search(r"\([^()]*\(https?://", text)


def test_sub_headings_look_different_from_snippet_titles(text):
    assert "How it works\n------------\n" in text
    assert "What the skin does next\n~~~~~~~~~~~~~~~~~~~~~~~\n" in text
    assert "Smaller point\n.............\n" in text


def test_emphasis_is_kept_as_asterisks(text):
    assert "The *NHS* has" in text and "Each *pinprick* starts" in text


def test_lines_are_wrapped_at_72_columns(sample):
    text = Builder(open_workspace(sample.root)).build("2027-01-evidence").rendered.text
    for line in text.splitlines():
        if not URL.search(line):
            assert len(line) <= 72, line


def test_markdown_alone_still_writes_links_inline():
    """Without an issue's references (a one-off Markdown render) a link keeps its URL."""
    text = render_markdown("See [the page](https://example.org/p) and <https://example.org/q>.")
    assert text.text == "See the page (https://example.org/p) and https://example.org/q."
