"""The public archive as data: which issues are on it, their canonical URLs, the web
page's share of the email HTML, and the Atom feed. Pure: no files, no database."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from urllib.parse import quote

from newsletter.domain.personalize import CLOSE, OPEN

ARCHIVE_PATH = "/archive/"
FEED_PATH = "/feed.xml"


def archive_url(base_url: str) -> str:
    return base_url.rstrip("/") + ARCHIVE_PATH


def page_url(base_url: str, slug: str) -> str:
    """One URL per issue, with the trailing slash: the static site is `<slug>/index.html`."""
    return f"{archive_url(base_url)}{quote(slug, safe='')}/"


def feed_url(base_url: str) -> str:
    return base_url.rstrip("/") + FEED_PATH


def is_public(status: str, sent: bool) -> bool:
    """On the archive: everything that went out to the list, and what the editor marked
    `published`. A draft or a ready issue that was never sent stays private."""
    return sent or status == "published"


def first_release(day: date, sent_at: datetime | None) -> datetime:
    """When readers first saw it: the first send, or the issue's date when only published."""
    return sent_at if sent_at is not None else datetime.combine(day, time(0), UTC)


def ordered_topics(tags: Iterable[str], configured: Sequence[str]) -> list[str]:
    """An issue's topics once each: the configured `[topics]` order first, then the rest
    in the order the snippets bring them."""
    seen = list(dict.fromkeys(tags))
    known = [tag for tag in configured if tag in seen]
    return known + [tag for tag in seen if tag not in known]


@dataclass(frozen=True)
class Site:
    """The newsletter as the archive presents it."""

    name: str
    author: str
    base_url: str
    subscribe_url: str
    language: str = "en"

    @property
    def archive_url(self) -> str:
        return archive_url(self.base_url)

    @property
    def feed_url(self) -> str:
        return feed_url(self.base_url)


@dataclass(frozen=True)
class Topic:
    tag: str
    label: str


@dataclass(frozen=True)
class Entry:
    """One issue on the archive: what the index, its page and its feed entry say."""

    slug: str
    subject: str
    summary: str
    day: date
    published: datetime
    updated: datetime
    topics: tuple[Topic, ...]
    url: str
    sent: bool
    body: str  # the public email's body, for the page and the feed
    image: str | None = None  # the first image, for og:image

    @property
    def date_text(self) -> str:
        return f"{self.day.day} {self.day:%B %Y}"


def newest_first(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.day, e.published, e.slug), reverse=True)


@dataclass(frozen=True)
class EmailParts:
    """What a web page takes from the rendered email: its style sheets (the responsive
    column widths live there) and the body, without mail-client workarounds."""

    styles: tuple[str, ...]
    body: str
    images: tuple[str, ...]


_HEAD = re.compile(r"<head\b[^>]*>(.*?)</head>", re.S | re.I)
_BODY = re.compile(r"<body\b[^>]*>(.*)</body>", re.S | re.I)
# Outlook-only markup (`<!--[if mso | IE]>...<![endif]-->`): comments to every browser.
_CONDITIONAL = re.compile(r"<!--\[if [^\]]*\]>.*?<!\[endif\]-->", re.S)
_STYLE = re.compile(r"<style\b([^>]*)>(.*?)</style>", re.S | re.I)
_MEDIA = re.compile(r"""\smedia=("[^"]*"|'[^']*')""", re.I)
# MJML puts the preheader first in the body, hidden: inbox text, not page text.
_PREHEADER = re.compile(r'^\s*<div style="display:none;[^"]*">[^<]*</div>', re.S)
_IMG_SRC = re.compile(r"""<img\b[^>]*?\ssrc=("([^"]*)"|'([^']*)')""", re.I)


def email_parts(html: str) -> EmailParts:
    """Cut an MJML-rendered document into styles and body (see EmailParts)."""
    head = _HEAD.search(html)
    body = _BODY.search(html)
    if body is None:
        raise ValueError("the rendered email has no <body>")
    styles = []
    for attributes, css in _STYLE.findall(_CONDITIONAL.sub("", head.group(1) if head else "")):
        media = _MEDIA.search(attributes)
        styles.append(f"<style{media.group(0) if media else ''}>{css.strip()}</style>")
    inner = _PREHEADER.sub("", _CONDITIONAL.sub("", body.group(1)), count=1).strip()
    images = tuple(m.group(2) or m.group(3) or "" for m in _IMG_SRC.finditer(inner))
    return EmailParts(styles=tuple(styles), body=inner, images=images)


def placeholders_left(html: str) -> bool:
    """A public page must carry nobody's links: any placeholder left means it could."""
    return OPEN in html or CLOSE in html


def atom_feed(site: Site, entries: Sequence[Entry], generator: str = "newsletter") -> bytes:
    """The Atom feed of the archive, newest first, each entry with its full public HTML.

    Ids are the canonical URLs, which never change for an issue; the feed's `updated`
    is its newest entry's, so rebuilding an unchanged archive gives the same bytes."""
    # Imported here: feedgen pulls in lxml and dateutil (~30 ms), which every `build` and
    # `check` would otherwise pay for a feed that only the archive writes.
    from feedgen.feed import FeedGenerator

    feed = FeedGenerator()
    feed.id(site.feed_url)
    feed.title(site.name)
    feed.author({"name": site.author})
    feed.link(href=site.feed_url, rel="self", type="application/atom+xml")
    feed.link(href=site.archive_url, rel="alternate", type="text/html")
    feed.language(site.language)
    feed.generator(generator)
    ordered = newest_first(entries)
    feed.updated(max((e.updated for e in ordered), default=datetime(2000, 1, 1, tzinfo=UTC)))
    for entry in ordered:
        item = feed.add_entry(order="append")  # feedgen prepends by default
        item.id(entry.url)
        item.title(entry.subject)
        item.link(href=entry.url, rel="alternate", type="text/html")
        item.published(entry.published)
        item.updated(entry.updated)
        if entry.summary:
            item.summary(entry.summary)
        for topic in entry.topics:
            item.category(term=topic.tag, label=topic.label)
        item.content(entry.body, type="html")
    return feed.atom_str(pretty=True)
