"""Content styles reach readers whose client drops `<head>` styles: they are inlined."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from newsletter.domain.personalize import placeholder
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder
from newsletter.services.inline import inline_css, split_at_rules, take_inline_styles


class Elements(HTMLParser):
    """(tag, attributes, inside a <style>) of every start tag, and the head's style text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.head_css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data):
        if self._in_style:
            self.head_css.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def declarations(style: str) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture
def build(sample):
    sample.snippet(
        "a",
        body="Intro [a link](https://example.org/x).\n\n## A sub-heading\n\n- one\n- two\n",
        sources="\n  - title: A source\n    url: https://example.org/source",
    )
    sample.issue("t", ["a"])
    return Builder(open_workspace(sample.root)).build("t")


def test_every_heading_and_content_link_carries_its_style_inline(build):
    tags = parse(build.rendered.html).tags
    headings = [attrs for tag, attrs in tags if tag in ("h1", "h2", "h3")]
    assert len(headings) >= 3
    for attrs in headings:
        style = declarations(attrs.get("style", ""))
        assert style.get("font-size", "").endswith("px") and style.get("line-height"), attrs
        assert "margin" in style, attrs
    links = [attrs for tag, attrs in tags if tag == "a"]
    assert links
    for attrs in links:
        assert re.fullmatch(r"#[0-9a-f]{6}", declarations(attrs.get("style", "")).get("color", ""))
    content = next(a for a in links if a["href"] == "https://example.org/x")
    assert declarations(content["style"])["color"] == "#0b6e4f"
    lists = [attrs for tag, attrs in tags if tag == "ul"]
    assert lists and all("padding-left" in declarations(a.get("style", "")) for a in lists)


def test_inline_styles_are_not_left_in_the_head_but_media_queries_are(build):
    head = "".join(parse(build.rendered.html).head_css)
    assert "h2 {" not in head and "h2{" not in head
    assert "@media" in head  # mjml's responsive columns stay where clients apply them
    assert '<mj-style inline="inline">' in build.mjml  # the MJML as MJML 4 would read it


def test_placeholders_survive_inlining_untouched():
    url, name = placeholder("unsubscribe_url"), placeholder("first_name", "there")
    html = f'<html><head></head><body><p>Hi {name}</p><a href="{url}">x</a></body></html>'
    out = inline_css(html, "a { color: #123456; } p { margin: 0; }")
    assert f'<a href="{url}" style="color:#123456">' in out
    assert f'<p style="margin:0">Hi {name}</p>' in out


def test_an_elements_own_style_wins_over_inlined_rules():
    html = '<html><head></head><body><a href="#x" style="color:#ffffff">b</a></body></html>'
    assert 'style="color:#ffffff"' in inline_css(html, "a { color: #000000; }")


def test_only_inline_mj_styles_are_taken_and_their_at_rules_stay_in_the_head():
    source = (
        "<mj-head>\n"
        '  <mj-style inline="inline">\n    h2 { color: red; }\n'
        "    @media (max-width: 480px) { h2 { font-size: 18px; } }\n  </mj-style>\n"
        "  <mj-style>.x { color: blue; }</mj-style>\n"
        "</mj-head>"
    )
    rest, css = take_inline_styles(source)
    assert css == "h2 { color: red; }"
    assert "<mj-style>.x { color: blue; }</mj-style>" in rest
    assert "@media (max-width: 480px) { h2 { font-size: 18px; } }" in rest
    assert rest.count("\n") == source.count("\n")  # lines of the rest do not move


def test_split_at_rules_ignores_braces_in_comments():
    plain, at_rules = split_at_rules("a { b: c } /* } */ @media x { a { b: d } } p { q: r }")
    assert " ".join(plain.split()) == "a { b: c } p { q: r }"
    assert at_rules.strip() == "@media x { a { b: d } }"
