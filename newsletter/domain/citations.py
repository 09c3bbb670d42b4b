"""Sources numbered once per issue: first cited, first numbered, one number per URL.

A snippet's front-matter sources and the links in its body that point at one of them are
citations. The issue prints one list of sources at the end; a snippet shows `[1]`, `[2]`
where its sources used to be listed, and a link to a source in running text gets its number
after it. The text part also numbers the other links (after the sources), so that each URL
is written once, at the end, instead of in the middle of a sentence.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DOI_HOSTS = frozenset({"doi.org", "dx.doi.org", "www.doi.org"})


@dataclass(frozen=True)
class Reference:
    number: int
    url: str
    title: str = ""

    @property
    def anchor(self) -> str:
        """The id of the entry in the HTML list (`#source-1`)."""
        return f"source-{self.number}"


def url_key(url: str) -> str:
    """What makes two URLs the same source: not the scheme, the host's case, a trailing
    slash, a fragment, or which of doi.org's hosts (DOIs themselves ignore case)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".").lower()
    path = parts.path.rstrip("/")
    if host in DOI_HOSTS:  # a DOI may be written with its slash escaped (%2F)
        host, path = "doi.org", unquote(path).lower()
    return f"{host}{path}?{parts.query}" if parts.query else f"{host}{path}"


class References:
    """The numbers of one issue. Render in reading order: the first citation numbers first."""

    def __init__(self, sources: Iterable[tuple[str, str]]) -> None:
        self._known: dict[str, tuple[str, str]] = {}  # key -> (title, url); first title wins
        for title, url in sources:
            self._known.setdefault(url_key(url), (title, url))
        self._cited: dict[str, Reference] = {}
        self._links: dict[str, Reference] = {}

    def is_source(self, url: str) -> bool:
        return url_key(url) in self._known

    def cite(self, url: str) -> Reference | None:
        """The source's number (given now if it is its first citation); None if not a source."""
        key = url_key(url)
        if key not in self._known:
            return None
        if key not in self._cited:
            title, written = self._known[key]
            self._cited[key] = Reference(len(self._cited) + 1, written, title)
        return self._cited[key]

    def link(self, url: str) -> Reference:
        """A number for another link in the text part, after every source's."""
        if url not in self._links:
            self._links[url] = Reference(len(self._known) + len(self._links) + 1, url)
        return self._links[url]

    def citing_only(self) -> References:
        """A view that numbers citations together with this one but keeps its other links
        to itself: for Markdown read only for its citations (a teaser's body, which the
        email leaves out), so that its sources keep their numbers and their place in the
        list, and no link it does not show is listed."""
        view = copy.copy(self)  # shares what is known and cited
        view._links = {}
        return view

    @property
    def sources(self) -> list[Reference]:
        return list(self._cited.values())

    @property
    def links(self) -> list[Reference]:
        return list(self._links.values())
