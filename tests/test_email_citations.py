"""Sources numbered once per issue (first cited, first numbered), cited as [n], listed once."""

from __future__ import annotations

import re

import pytest

from newsletter.domain.citations import References, url_key
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

REVIEW = "https://doi.org/10.1007/s13555-021-00653-2"
TRIAL = "https://doi.org/10.4103/0974-7753.114700"
JOURNAL = "https://www.msjonline.org/index.php/ijrms/article/view/7777"
NBSP = "\u00a0"


def sources(*pairs: tuple[str, str]) -> str:
    return "".join(f'\n  - title: "{title}"\n    url: {url}' for title, url in pairs)


@pytest.fixture
def build(sample):
    """Three snippets sharing a review; the second cites it inline as dx.doi.org."""
    sample.snippet(
        "first",
        title="First",
        body=f"Needling helps, say trials ([Dhurat et al., 2013]({TRIAL})).",
        sources=sources(("Dhurat 2013, the trial", TRIAL), ("English 2022, the review", REVIEW)),
    )
    sample.snippet(
        "second",
        title="Second",
        body=(
            "- **[Malhotra, 2020](" + JOURNAL + ")**: 60 patients.\n\n"
            "The review is cautious ([English et al., 2022]"
            "(https://dx.doi.org/10.1007/S13555-021-00653-2/))."
        ),
        sources=sources(("English 2022, the review", REVIEW), ("Malhotra 2020", JOURNAL)),
    )
    sample.snippet(
        "third", title="Third", body="No citations here.", sources=sources(("Again", REVIEW))
    )
    sample.issue("t", ["first", "second", "third"])
    return Builder(open_workspace(sample.root)).build("t")


def test_each_source_is_listed_once_numbered_by_first_citation(build):
    html = build.rendered.html
    rows = re.findall(
        r'<td[^>]* id="source-(\d)"[^>]*>\[(\d)\]</td><td[^>]*><a[^>]* href="([^"]+)"', html
    )
    assert rows == [("1", "1", TRIAL), ("2", "2", REVIEW), ("3", "3", JOURNAL)]
    assert html.count(">Sources</h2>") == 1
    text = build.rendered.text
    for url in (TRIAL, REVIEW, JOURNAL):
        assert text.count(url) == 1, url
    listed = text.split("\nSources\n-------\n", 1)[1]
    assert listed.index("[1] Dhurat 2013") < listed.index("[2] English 2022")
    assert listed.index("[2] English 2022") < listed.index("[3] Malhotra 2020")


def test_each_snippet_cites_its_sources_by_number_linking_to_the_list(build):
    html = build.rendered.html
    cite = (
        r'<a (?=[^>]*class="cite")(?=[^>]*aria-label="source {n}")'
        r'[^>]*href="#source-{n}"[^>]*>\[{n}\]</a>'
    )
    per_snippet = re.findall(r">Sources: (.*?)</p>", html)
    expected = [(1, 2), (2, 3), (2,)]
    assert len(per_snippet) == len(expected)
    for line, numbers in zip(per_snippet, expected, strict=True):
        assert re.fullmatch(", ".join(cite.format(n=n) for n in numbers), line), line
    text = build.rendered.text
    assert [line for line in text.splitlines() if line.startswith("Sources: ")] == [
        "Sources: [1], [2]",
        "Sources: [2], [3]",
        "Sources: [2]",
    ]


def test_a_link_to_a_source_in_the_text_gets_its_number(build):
    html, text = build.rendered.html, build.rendered.text
    assert re.search(
        rf'<a href="{TRIAL}"[^>]*>Dhurat et al., 2013</a>&nbsp;<a class="cite" href="#source-1"',
        html,
    )
    assert f"(Dhurat et al., 2013{NBSP}[1])." in text
    assert f"(English et al., 2022{NBSP}[2])." in text  # dx.doi.org, upper case, slash: same
    assert "(https://" not in text


def test_the_number_follows_the_emphasis_around_a_cited_link(build):
    html, text = build.rendered.html, build.rendered.text
    assert re.search(r'Malhotra, 2020</a></strong>&nbsp;<a class="cite" href="#source-3"', html)
    assert f"- *Malhotra, 2020*{NBSP}[3]: 60 patients." in text


def test_anchor_links_to_the_list_pass_the_checks(build):
    assert build.findings == []


def test_a_link_to_a_missing_anchor_is_an_error_at_its_line(sample, cli):
    sample.snippet("a", body="Intro.\n\nSee [below](#nowhere).")
    sample.issue("t", ["a"])
    result = cli("check", "t")
    assert result.code == 1
    assert "error issues/snippets/a.md:12: link '#nowhere' points at nothing" in result.out


def test_url_key_ignores_what_does_not_change_the_source():
    assert url_key("https://dx.doi.org/10.1007/ABC/") == url_key("http://doi.org/10.1007/abc")
    assert url_key("https://Example.org/a#part") == url_key("https://example.org/a")
    assert url_key("https://example.org/a?x=1") != url_key("https://example.org/a?x=2")
    assert url_key("https://example.org/Paper") != url_key("https://example.org/paper")


def test_other_links_are_numbered_after_every_source():
    refs = References([("A", "https://a.example/1"), ("B", "https://b.example/2")])
    assert refs.link("https://c.example/").number == 3
    assert refs.cite("https://b.example/2").number == 1  # first cited, first numbered
    assert refs.link("https://c.example/").number == 3
    assert refs.cite("https://nowhere.example/") is None
    assert [(r.number, r.title) for r in refs.sources] == [(1, "B")]
