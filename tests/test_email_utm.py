"""UTM parameters only on links to our own domains (`[utm] domains`, default: base_url's host)."""

from __future__ import annotations

import re

import pytest

from newsletter.domain.links import Utm, host_in, tag_url
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

OWN = "https://news.follicle-notes.example.com/guide"
SUBDOMAIN = "https://shop.news.follicle-notes.example.com/kit"
DOI = "https://doi.org/10.1007/s13555-021-00653-2"
JOURNAL = "https://www.msjonline.org/index.php/ijrms/article/view/7777"
LOOKALIKE = "https://evilnews.follicle-notes.example.com.attacker.example/x"

UTM = Utm("fn", "email", "2026-12-welcome", domains=("news.follicle-notes.example.com",))


def test_own_domain_and_its_subdomains_are_tagged():
    assert tag_url(OWN, UTM) == f"{OWN}?utm_source=fn&utm_medium=email&utm_campaign=2026-12-welcome"
    assert "utm_campaign=2026-12-welcome" in tag_url(SUBDOMAIN, UTM)
    assert "utm_source" in tag_url("https://NEWS.Follicle-Notes.example.com./x", UTM)


@pytest.mark.parametrize("url", [DOI, JOURNAL, LOOKALIKE, "https://example.com/news"])
def test_foreign_links_are_left_as_written(url):
    assert tag_url(url, UTM) == url


def test_a_domain_only_matches_whole_labels():
    assert host_in("https://a.example.org/", ["example.org"])
    assert not host_in("https://notexample.org/", ["example.org"])
    assert not host_in("mailto:someone@example.org", ["example.org"])


def test_existing_query_and_utm_are_kept():
    utm = Utm("fn", "email", "c", domains=("example.org",))
    assert tag_url("https://example.org/a?x=1#top", utm) == (
        "https://example.org/a?x=1&utm_source=fn&utm_medium=email&utm_campaign=c#top"
    )
    assert tag_url("https://example.org/a?utm_source=own", utm).count("utm_source") == 1
    assert tag_url("mailto:a@example.org", utm) == "mailto:a@example.org"
    assert tag_url("https://example.org/a", None) == "https://example.org/a"


def links_of(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="(https://[^"]+)"', html)]


@pytest.fixture
def linked(sample):
    body = (
        f"Read [the review]({DOI}), [the trial]({JOURNAL}), [our guide]({OWN}) "
        f"and [the kit]({SUBDOMAIN})."
    )
    sample.snippet("links", body=body)
    sample.issue("t", ["links"])
    return sample


def test_an_issue_tags_only_own_links_in_html_and_text(linked):
    build = Builder(open_workspace(linked.root)).build("t")
    html_links, text = links_of(build.rendered.html), build.rendered.text
    for foreign in (DOI, JOURNAL, "https://doi.org/10.1000/182"):  # the default source
        assert foreign in html_links, foreign
        assert foreign in text
        assert f"{foreign}?utm" not in build.rendered.html + text
    for own in (OWN, SUBDOMAIN):
        tagged = [h for h in html_links if h.startswith(own)]
        assert tagged and all("utm_campaign=t" in h for h in tagged), own
        assert f"{own}?utm_source=follicle-notes" in text


def test_utm_domains_setting_replaces_the_default(linked, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UTM__DOMAINS", '["doi.org"]')
    build = Builder(open_workspace(linked.root)).build("t")
    links = links_of(build.rendered.html)
    assert any(h.startswith(f"{DOI}?utm_source=follicle-notes") for h in links)
    assert not [h for h in links if h.startswith(OWN + "?utm")]


def test_no_utm_at_all_without_a_source(linked, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UTM__SOURCE", "")
    build = Builder(open_workspace(linked.root)).build("t")
    assert "utm_" not in build.rendered.html + build.rendered.text
