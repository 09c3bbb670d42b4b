"""Composition: sections with headings (and a table of contents from three), teasers that
lead to the archive page, anchors on every snippet, in the HTML and in the text part; the
flat `snippets:` list as before; a file with both lists, or neither, refused at its line."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from newsletter.domain.mjml_rules import validate_mjml
from newsletter.errors import ExitStatus
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

BASE = "https://news.follicle-notes.example.com"
DOI = "https://doi.org/10.1000/182"
OTHER_DOI = "https://doi.org/10.1007/s13555-021-00653-2"
TEASER_BODY = "This sentence is only in the body of the teaser snippet."


class Html(HTMLParser):
    """Elements in document order with their attributes and text, and every id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self.ids: set[str] = set()
        self.open: list[dict] = []
        self.text_parts: list[str] = []
        self.skip = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        found = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        if tag in ("style", "title"):
            self.skip += 1
        if found.get("id"):
            self.ids.add(found["id"])
        self.elements.append(found)
        if tag not in ("img", "br", "meta", "link", "hr", "input"):
            self.open.append(found)

    def handle_endtag(self, tag):
        if tag in ("style", "title") and self.skip:
            self.skip -= 1
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index]["tag"] == tag:
                del self.open[index:]
                break

    def handle_data(self, data):
        if self.skip:
            return
        self.text_parts.append(data)
        for element in self.open:
            element["text"] += data

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def all(self, tag: str, **wanted: str) -> list[dict]:
        return [
            e
            for e in self.elements
            if e["tag"] == tag and all(v in e.get(k, "").split() for k, v in wanted.items())
        ]

    def after(self, element: dict) -> list[dict]:
        return self.elements[self.elements.index(element) + 1 :]


def sectioned(sample, slug: str, sections: list[tuple[str, list[str]]], **front: str) -> None:
    """An issue file grouping its snippets; an entry is an id or 'id teaser'/'id repeat'."""
    lines = ["---", "subject: A sectioned issue", "preheader: Three parts.", "date: 2026-12-01"]
    lines += [f"{key}: {value}" for key, value in {"status": "ready", **front}.items()]
    lines.append("sections:")
    for title, entries in sections:
        lines += [f"  - title: {title}", "    snippets:"]
        for entry in entries:
            snippet_id, *options = entry.split()
            if options:
                lines.append(f"      - id: {snippet_id}")
                lines += [f"        {option}: true" for option in options]
            else:
                lines.append(f"      - {snippet_id}")
    lines += ["---", "Welcome to the sections."]
    sample.write(f"issues/{slug}.md", "\n".join(lines) + "\n")


@pytest.fixture
def three(sample):
    """Three sections; 'b' is a teaser whose only source is cited nowhere else."""
    sample.snippet("a", title="Alpha piece", body=f"Alpha body cites [a paper]({DOI}).")
    sample.snippet(
        "b",
        title="Beta piece",
        summary="What the beta piece covers, in one line.",
        body=f"{TEASER_BODY} It cites [the review]({OTHER_DOI}).",
        sources=f'\n  - title: "The review"\n    url: {OTHER_DOI}',
    )
    sample.snippet("c", title="Gamma piece", body="Gamma body text.")
    sample.snippet("d", title="Delta piece", body="Delta body text.")
    sectioned(
        sample,
        "t",
        [("The evidence", ["a", "b teaser"]), ("Safety corner", ["c"]), ("Last words", ["d"])],
    )
    return Builder(open_workspace(sample.root))


def test_sections_have_headings_and_a_table_of_contents_linking_to_them(three):
    build = three.build("t")
    html = Html(build.rendered.html)
    headings = html.all("h2", **{"class": "nl-section-title"})
    assert [(h["id"], h["text"]) for h in headings] == [
        ("section-1", "The evidence"),
        ("section-2", "Safety corner"),
        ("section-3", "Last words"),
    ]
    toc = html.all("div", **{"class": "nl-toc"})[0]
    links = [e for e in html.after(toc) if e["tag"] == "a"][:3]
    assert [(a["href"], a["text"]) for a in links] == [
        ("#section-1", "The evidence"),
        ("#section-2", "Safety corner"),
        ("#section-3", "Last words"),
    ]
    assert all(a["href"][1:] in html.ids for a in links)
    # The table of contents comes first, right under the subject.
    h1 = html.all("h1")[0]
    assert html.elements.index(h1) < html.elements.index(toc) < html.elements.index(headings[0])
    # Snippets are h3 under their section's h2, each with its id as anchor, in order.
    titles = html.all("h3", **{"class": "nl-title"})
    assert [(t["id"], t["text"]) for t in titles] == [
        ("a", "Alpha piece"),
        ("b", "Beta piece"),
        ("c", "Gamma piece"),
        ("d", "Delta piece"),
    ]
    order = [html.elements.index(e) for e in (headings[0], titles[0], titles[1], headings[1])]
    assert order == sorted(order)
    assert not [f for f in build.findings if f.severity == "error"], build.findings


def test_a_teaser_shows_title_summary_and_read_more_but_not_its_body(three):
    build = three.build("t")
    html = Html(build.rendered.html)
    title = html.all("h3", id="b")[0]
    following = html.after(title)
    summary = next(e for e in following if e["tag"] == "p")
    assert summary["text"] == "What the beta piece covers, in one line."
    read_more = next(e for e in following if e["tag"] == "a")
    assert read_more["text"].startswith("Read more")
    assert read_more["aria-label"] == "Read more: Beta piece"
    url = read_more["href"]
    assert url.startswith(f"{BASE}/archive/t/?utm_source=follicle-notes")
    assert url.endswith("#b") and "utm_campaign=t" in url
    assert TEASER_BODY not in build.rendered.html
    assert "Alpha body cites" in html.text  # the other snippets are in full


def test_a_teasers_sources_keep_their_numbers_in_email_and_archive(three):
    email = three.build("t").rendered
    issue = three.library.compose("t")
    public = three.renderer.render(issue, public=True).rendered
    for rendered in (email, public):
        html = Html(rendered.html)
        sources = html.all("td", **{"class": "n"})
        assert [s["id"] for s in sources] == ["source-1", "source-2"]
        listed = next(e for e in html.after(sources[1]) if e["tag"] == "a")
        assert (listed["href"], listed["text"]) == (OTHER_DOI, "The review")
        marks = [e for e in html.after(html.all("h3", id="b")[0]) if e["tag"] == "p"]
        line = next(p for p in marks if p["text"].startswith("Sources:"))
        assert line["text"] == "Sources: [2]"


def test_the_archive_rendering_shows_a_teaser_in_full_at_its_anchor(three):
    issue = three.library.compose("t")
    public = three.renderer.render(issue, public=True).rendered
    html = Html(public.html)
    assert html.all("h3", id="b")  # where "Read more" leads
    assert TEASER_BODY in html.text
    assert "Read more" not in html.text
    assert TEASER_BODY in public.text and "Read more" not in public.text


def test_the_text_part_has_the_same_structure(three):
    text = three.build("t").rendered.text
    assert "In this issue:\n  1. The evidence\n  2. Safety corner\n  3. Last words\n" in text
    assert text.index("In this issue:") < text.index("Hi ")
    for heading in ("THE EVIDENCE", "SAFETY CORNER", "LAST WORDS"):
        assert f"\n{heading}\n{'=' * len(heading)}\n" in text
    teaser = text.split("Beta piece\n----------\n", 1)[1].split("SAFETY CORNER", 1)[0]
    assert "What the beta piece covers, in one line." in teaser
    read_more = re.search(r"Read more: (\S+)", teaser)
    assert read_more is not None
    assert read_more.group(1).startswith(f"{BASE}/archive/t/?utm_source=")
    assert read_more.group(1).endswith("#b")
    assert TEASER_BODY not in text
    assert "Sources: [2]" in teaser  # the teaser's source is still listed, with its number
    assert "[2] The review" in text


def test_two_sections_have_headings_but_no_table_of_contents(sample):
    sample.snippet("a")
    sample.snippet("b")
    sectioned(sample, "two", [("First", ["a"]), ("Second", ["b"])])
    rendered = Builder(open_workspace(sample.root)).build("two").rendered
    html = Html(rendered.html)
    assert len(html.all("h2", **{"class": "nl-section-title"})) == 2
    assert not html.all("div", **{"class": "nl-toc"})
    assert "In this issue" not in rendered.text and "\nFIRST\n=====\n" in rendered.text


def test_a_flat_list_is_one_untitled_section_as_before(sample):
    sample.snippet("a", title="Alpha piece", body="Alpha body.")
    sample.snippet("b", title="Beta piece", body="Beta body.")
    sample.issue("flat", ["a", "b"])
    build = Builder(open_workspace(sample.root)).build("flat")
    html = Html(build.rendered.html)
    assert [(h.get("id", ""), h["text"]) for h in html.all("h2")] == [
        ("a", "Alpha piece"),
        ("b", "Beta piece"),
        ("", "Sources"),
    ]
    assert not html.all("h3") and not html.all("div", **{"class": "nl-toc"})
    assert "Alpha body." in html.text and "Beta body." in html.text
    text = build.rendered.text
    assert "In this issue" not in text and "Read more" not in text
    assert "\n\nAlpha piece\n-----------\n\nAlpha body.\n" in text
    assert build.findings == []
    assert build.issue.meta.snippets == ["a", "b"]


def test_the_sample_issues_check_clean(sample):
    builder = Builder(open_workspace(sample.root))
    for slug in ("2026-12-welcome", "2027-01-evidence"):
        issue_date = builder.library.load_issue(slug).meta.date  # as checked before sending
        assert builder.build(slug, today=issue_date).findings == [], slug


def test_the_welcome_issue_is_sectioned_with_a_teaser(sample):
    builder = Builder(open_workspace(sample.root))
    build = builder.build("2026-12-welcome")
    layout = build.issue.meta.layout
    assert 2 <= len(layout.sections) <= 3 and all(s.title for s in layout.sections)
    assert [e.id for e in layout.entries if e.teaser] == ["collagen-and-elastin"]
    assert not validate_mjml(build.mjml)  # every mj- tag and attribute is MJML 4
    html = Html(build.rendered.html)
    assert {a["href"][1:] for a in html.all("a") if a["href"].startswith("#")} <= html.ids


def test_entry_options_are_kept_in_the_model(sample):
    sample.snippet("a")
    sample.snippet("b")
    sectioned(sample, "t", [("One", ["a repeat", "b teaser repeat"])])
    layout = Builder(open_workspace(sample.root)).library.load_issue("t").meta.layout
    assert [(e.id, e.teaser, e.repeat) for e in layout.entries] == [
        ("a", False, True),
        ("b", True, True),
    ]
    assert [e.line for e in layout.entries] == [9, 11]


def test_a_flat_list_may_hold_teasers(sample):
    sample.snippet("a", body="Alpha body.")
    sample.snippet("b", body="Hidden body.", summary="Beta summary.")
    sample.write(
        "issues/t.md",
        """\
        ---
        subject: Flat with a teaser
        preheader: One teaser.
        date: 2026-12-01
        status: ready
        snippets:
          - a
          - id: b
            teaser: true
        ---
        Hi.
        """,
    )
    rendered = Builder(open_workspace(sample.root)).build("t").rendered
    assert "Beta summary." in rendered.html and "Hidden body." not in rendered.html
    assert f"{BASE}/archive/t/" in rendered.text.split("Read more: ", 1)[1]


ISSUE_HEAD = "---\nsubject: S\npreheader: P\ndate: 2026-12-01\nstatus: ready\n"


@pytest.mark.parametrize(
    ("front", "line", "fragment"),
    [
        (
            "snippets: [a]\nsections:\n  - title: T\n    snippets: [a]\n",
            7,
            "not both",
        ),
        (
            "sections:\n  - title: T\n    snippets: [a]\nsnippets: [a]\n",
            9,
            "not both",
        ),
        ("", 6, "no snippets"),
        ("sections:\n  - title: T\n    snippets: []\n", 8, "at least 1"),
        ("sections:\n  - snippets: [a]\n", 7, "sections.0.title"),
        ("sections:\n  - title: T\n    snippets: [a]\n    colour: red\n", 9, "colour"),
        ("snippets:\n  - id: a\n    teaser: maybe\n", 8, "teaser"),
        ("snippets:\n  - id: a\n    hidden: true\n", 8, "hidden"),
        ("snippets:\n  - a\n  - nope\n", 8, "unknown snippet 'nope'"),
    ],
)
def test_bad_layouts_are_input_errors_naming_the_line(sample, cli, front, line, fragment):
    sample.snippet("a")
    sample.write("issues/bad.md", f"{ISSUE_HEAD}{front}---\nHi.\n")
    result = cli("check", "bad")
    assert result.code == ExitStatus.INPUT_ERROR, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and f"issues/bad.md:{line}:" in lines[0], lines
    assert fragment in lines[0], lines[0]


def test_a_snippet_in_two_sections_is_a_duplicate_at_its_second_line(sample, cli):
    sample.snippet("a")
    sectioned(sample, "t", [("One", ["a"]), ("Two", ["a"])])
    result = cli("check", "t", "--json")
    findings = {f["code"]: f for f in json.loads(result.out)["findings"]}
    assert result.code == ExitStatus.CHECKS_FAILED
    duplicate = findings["snippet-duplicate"]
    assert (duplicate["file"], duplicate["line"]) == ("issues/t.md", 12)


def test_a_snippet_may_not_take_a_numbered_anchor(sample, cli):
    sample.snippet("source-1")
    sample.issue("t", ["source-1"])
    result = cli("check", "t")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "issues/t.md:7:" in result.err and "rename" in result.err


def test_issues_list_and_snippet_use_see_sectioned_issues(cli):
    shown = cli("snippets", "show", "collagen-and-elastin", "--json")
    assert shown.code == 0, shown.err
    assert "2026-12-welcome" in shown.out
    listed = cli("issues", "list", "--json")
    assert listed.code == 0, listed.err
    issues = {i["slug"]: i for i in json.loads(listed.out)}
    assert issues["2026-12-welcome"]["snippets"][:2] == [
        "how-microneedling-works",
        "blood-flow-and-follicles",
    ]
