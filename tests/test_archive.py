"""The public archive: `newsletter archive build` (a static site and an Atom feed) and the
same pages on `serve`. Sends are real (the outbox transport), and the feed is read back
with feedparser, as a feed reader would."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import httpx
import pytest

from newsletter.domain.issue import parse_issue
from newsletter.services.ledger import Ledger
from newsletter.services.sending import create_send, plan_send

BASE = "https://news.follicle-notes.example.com"
WELCOME, EVIDENCE = "2026-12-welcome", "2027-01-evidence"
IMAGE = "https://images.example.org/scalp-closeup.jpg"
# The sample's local image (how-microneedling-works), published beside the pages.
LOCAL_IMAGE = f"{BASE}/archive/images/needle-depth-range.png"


class Page(HTMLParser):
    """What a test needs from an HTML page: its tags with attributes, and style text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self.title = ""
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.styles.append(data)
        elif self._in == "title":
            self.title += data

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def meta(self, key: str) -> str | None:
        for attrs in self.all("meta"):
            if key in (attrs.get("property"), attrs.get("name")):
                return attrs.get("content")
        return None

    def link(self, rel: str) -> str | None:
        return next((a["href"] for a in self.all("link") if a.get("rel") == rel), None)


def publish(sample, slug: str, **front: str) -> None:
    """An issue marked `status: published`, with one snippet showing an image."""
    sample.snippet(
        "with-image", image=IMAGE, alt="A close-up of a scalp", tags="[evidence, safety]"
    )
    sample.issue(
        slug,
        ["with-image", "how-microneedling-works"],
        status="published",
        date="2027-02-04",
        **front,
    )


def build(cli, out: Path) -> dict:
    result = cli("archive", "build", "--out", str(out), "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_build_writes_index_pages_and_feed_of_sent_and_published_issues(sending, cli, tmp_path):
    sending.add(2)
    sending.run("outbox", WELCOME)  # sent; EVIDENCE is ready but never sent
    publish(sending.sample, "2027-02-published", subject="Published, never mailed")
    sending.sample.issue("2027-03-draft", ["how-microneedling-works"], status="draft")
    out = tmp_path / "site"

    report = build(cli, out)

    assert [i["slug"] for i in report["issues"]] == ["2027-02-published", WELCOME]
    assert [i["sent"] for i in report["issues"]] == [False, True]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".newsletter-archive",
        f"{WELCOME}/index.html",
        "2027-02-published/index.html",
        "feed.xml",
        "images/needle-depth-range.png",
        "index.html",
    ]
    sample_image = sending.sample.root / "issues/images/needle-depth-range.png"
    assert (out / "images/needle-depth-range.png").read_bytes() == sample_image.read_bytes()
    index = (out / "index.html").read_text()
    assert index.index("Published, never mailed") < index.index("Can hundreds of tiny scalp")
    assert 'href="2027-02-published/"' in index and f'href="{WELCOME}/"' in index
    assert "The basics" in index and "How it works" in index  # [topics] labels, not tags
    assert EVIDENCE not in index and "2027-03-draft" not in index

    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Follicle Notes"
    assert feed.feed.id == f"{BASE}/feed.xml"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links == {"self": f"{BASE}/feed.xml", "alternate": f"{BASE}/archive/"}
    assert [e.title for e in feed.entries] == [
        "Published, never mailed",
        "Can hundreds of tiny scalp pricks help thinning hair?",
    ]
    welcome = feed.entries[1]
    assert welcome.id == welcome.link == f"{BASE}/archive/{WELCOME}/"
    assert welcome.published_parsed and welcome.updated_parsed
    assert feed.feed.updated_parsed == max(e.updated_parsed for e in feed.entries)
    content = welcome.content[0]
    assert content.type == "text/html"
    assert "How microneedling works on the scalp" in content.value  # the full issue
    assert "Hi there," in content.value
    assert "/u/" not in content.value and "/preferences/" not in content.value
    assert {t.label for t in welcome.tags} >= {"The basics", "How it works"}
    assert welcome.summary.startswith("What the needles do")


def test_cancelled_and_test_sends_publish_nothing(sending, cli, tmp_path):
    sending.add(1)
    ledger = Ledger(sending.engine)
    plan = plan_send(sending.workspace, sending.engine, EVIDENCE, transport="outbox")
    ledger.cancel(create_send(ledger, plan).id)
    assert cli("send", WELCOME, "--to", "editor@example.com").code == 0  # [TEST]

    report = build(cli, tmp_path / "site")

    assert report["issues"] == []
    assert "No issues yet" in (tmp_path / "site" / "index.html").read_text()
    assert feedparser.parse((tmp_path / "site" / "feed.xml").read_bytes()).entries == []


def test_an_issue_a_cancelled_send_reached_is_published(sending, cli, tmp_path):
    """Its readers' "View online" link leads to the archive page, so the page must exist."""
    sending.add(3)
    sending.cancel_after_one(WELCOME)

    report = build(cli, tmp_path / "site")

    assert [i["slug"] for i in report["issues"]] == [WELCOME]
    assert (tmp_path / "site" / WELCOME / "index.html").is_file()


def test_a_sent_issue_whose_file_is_gone_is_left_out_with_a_warning(sending, cli, tmp_path):
    sending.add(1)
    sending.run("outbox", WELCOME)
    (sending.sample.root / "issues" / f"{WELCOME}.md").unlink()

    result = cli("archive", "build", "--out", str(tmp_path / "site"))

    assert result.code == 0, result.err
    assert f"warning: {WELCOME} left out: sent, but there is no {WELCOME}.md" in result.err
    assert WELCOME not in (tmp_path / "site" / "index.html").read_text()


def test_pages_have_canonical_url_og_tags_and_no_external_assets(cli, sample, tmp_path):
    publish(sample, "2027-02-published")
    out = tmp_path / "site"
    build(cli, out)
    url = f"{BASE}/archive/2027-02-published/"

    for path, canonical in (
        (out / "2027-02-published/index.html", url),
        (out / "index.html", None),
    ):
        text = path.read_text()
        page = Page(text)
        assert page.link("canonical") == (canonical or f"{BASE}/archive/")
        assert page.meta("viewport") == "width=device-width, initial-scale=1"
        assert page.meta("description")
        assert page.meta("og:site_name") == "Follicle Notes"
        assert page.meta("og:url") == page.link("canonical")
        assert page.all("script") == [] and page.all("iframe") == []
        for link in page.all("link"):  # nothing fetched from elsewhere: no style sheet, font
            assert link["rel"] in ("canonical", "alternate", "icon"), link
            assert link["rel"] != "icon" or link["href"].startswith("data:")
        assert not any("@import" in css or "url(" in css for css in page.styles)
        assert not any("style" in a and "url(" in a["style"] for _, a in page.tags)
        hrefs = [a.get("href", "") for a in page.all("a")]
        assert not any("/u/" in h or "/preferences/" in h or "/c/" in h for h in hrefs), hrefs
        assert "⟦" not in text and "⟧" not in text
        assert "noindex" not in text
    page = Page((out / "2027-02-published/index.html").read_text())
    assert page.meta("og:type") == "article"
    assert page.meta("og:title") == "A test issue"
    assert (
        page.meta("og:description") == page.meta("description") == "A short teaser for the inbox."
    )
    assert page.meta("og:image") == IMAGE
    # Only the issue's own images: the remote one, and the sample snippet's local one.
    assert [img["src"] for img in page.all("img")] == [IMAGE, LOCAL_IMAGE]
    assert f"{BASE}/subscribe" in [a.get("href") for a in page.all("a")]
    assert page.title == "A test issue · Follicle Notes"


def test_subject_with_markup_characters_is_escaped(cli, sample, tmp_path):
    subject = 'Fish & <chips> "today"'
    publish(sample, "2027-02-published", subject=json.dumps(subject))
    out = tmp_path / "site"
    build(cli, out)

    for path in (out / "index.html", out / "2027-02-published/index.html"):
        text = path.read_text()
        assert "chips" not in [tag for tag, _ in Page(text).tags]
        assert "Fish &amp; &lt;chips&gt;" in text
    page = Page((out / "2027-02-published/index.html").read_text())
    assert page.meta("og:title") == subject
    assert page.title == f"{subject} · Follicle Notes"
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert feed.entries[0].title == subject


def test_rebuild_swaps_the_whole_folder_and_refuses_a_foreign_one(cli, sample, tmp_path):
    publish(sample, "2027-02-published")
    out = tmp_path / "public" / "site"
    build(cli, out)
    sample.edit("issues/2027-02-published.md", "status: published", "status: ready")
    sample.edit(f"issues/{WELCOME}.md", "status: ready", "status: published")

    build(cli, out)

    assert not (out / "2027-02-published").exists()
    assert (out / WELCOME / "index.html").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["site"]  # no temporary folder left

    foreign = tmp_path / "documents"
    (foreign / "keep.txt").parent.mkdir()
    (foreign / "keep.txt").write_text("mine")
    refused = cli("archive", "build", "--out", str(foreign))
    assert refused.code == 2
    assert "not an archive folder" in refused.err
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]


def test_a_published_issue_that_cannot_render_fails_the_build_and_keeps_the_old_site(
    cli, sample, tmp_path
):
    publish(sample, "2027-02-published")
    out = tmp_path / "site"
    build(cli, out)
    before = (out / "index.html").read_bytes()
    sample.issue("2027-04-broken", ["no-such-snippet"], status="published")

    result = cli("archive", "build", "--out", str(out))

    assert result.code == 2
    assert "2027-04-broken" in result.err and "no-such-snippet" in result.err
    assert (out / "index.html").read_bytes() == before


def test_published_is_a_sendable_status():
    issue = parse_issue(
        "x", "---\nsubject: S\ndate: 2027-01-01\nstatus: published\nsnippets: [a]\n---\n", "x.md"
    )
    assert issue.meta.status == "published"
    with pytest.raises(Exception, match="published"):
        parse_issue(
            "x", "---\nsubject: S\ndate: 2027-01-01\nstatus: live\nsnippets: [a]\n---\n", "x.md"
        )


# -- serve ----------------------------------------------------------------------------------


def test_serve_answers_archive_pages_and_feed_and_404s_the_rest(web, sample):
    publish(sample, "2027-02-published")

    index = httpx.get(f"{web.url}/archive/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="2027-02-published/"' in index.text
    page = httpx.get(f"{web.url}/archive/2027-02-published/")
    assert page.status_code == 200
    for response in (index, page):
        policy = response.headers["content-security-policy"]
        assert "img-src 'self' https: data:" in policy and "frame-ancestors 'none'" in policy
        assert "script-src" not in policy and "default-src 'none'" in policy
        assert "x-robots-tag" not in response.headers
        assert "noindex" not in response.text
    assert Page(page.text).meta("og:type") == "article"

    moved = httpx.get(f"{web.url}/archive/2027-02-published")
    assert (moved.status_code, moved.headers["location"]) == (301, "/archive/2027-02-published/")
    assert httpx.get(f"{web.url}/archive").headers["location"] == "/archive/"

    feed = httpx.get(f"{web.url}/feed.xml")
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert [e.title for e in feedparser.parse(feed.content).entries] == ["A test issue"]

    for path in ("/archive/nope/", f"/archive/{EVIDENCE}/", f"/archive/{EVIDENCE}", "/archive/x/y"):
        missing = httpx.get(web.url + path)
        assert missing.status_code == 404, path
        assert "Link not valid" in missing.text  # the app's own not-found page


def test_served_archive_follows_edits_and_sends_and_revalidates(web, sample):
    first = httpx.get(f"{web.url}/archive/")
    assert "2027-02-published" not in first.text
    again = httpx.get(f"{web.url}/archive/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304

    publish(sample, "2027-02-published")

    second = httpx.get(f"{web.url}/archive/")
    assert 'href="2027-02-published/"' in second.text
    assert second.headers["etag"] != first.headers["etag"]


def test_static_build_and_served_archive_agree(web, cli, sample, tmp_path):
    publish(sample, "2027-02-published")
    out = tmp_path / "site"
    build(cli, out)

    assert httpx.get(f"{web.url}/archive/").content == (out / "index.html").read_bytes()
    served = httpx.get(f"{web.url}/archive/2027-02-published/").content
    assert served == (out / "2027-02-published/index.html").read_bytes()
    assert httpx.get(f"{web.url}/feed.xml").content == (out / "feed.xml").read_bytes()
