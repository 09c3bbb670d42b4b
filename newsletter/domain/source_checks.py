"""Are the sources real? What can be told without the network: a DOI link must hold a
well-formed DOI, no link may point at a reserved or example host (`made-up.invalid`), and a
snippet lists each source once. `newsletter check --online` fetches them too."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from newsletter.domain.citations import DOI_HOSTS, url_key
from newsletter.domain.findings import Finding, Severity
from newsletter.domain.issue import Issue

# A DOI: "10." + a registrant code of 4-9 digits (dot-separated parts allowed) + "/" + suffix.
_DOI = re.compile(r"10\.\d{4,9}(?:\.\d+)*/\S+")
# RFC 2606 and RFC 6761: names that can never be a real site.
RESERVED_SUFFIXES = (".invalid", ".test", ".example", ".localhost", ".local")
RESERVED_NAMES = frozenset(
    {"localhost", "example.com", "example.net", "example.org", "www.example.com"}
)


def reserved_host(url: str) -> str | None:
    """The host, when it is reserved for examples and tests (never a real source)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in RESERVED_NAMES or host.endswith(RESERVED_SUFFIXES):
        return host
    if host.endswith((".example.com", ".example.net", ".example.org")):
        return host
    return None


def bad_doi(url: str) -> str | None:
    """Why a doi.org link holds no well-formed DOI, or None."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in DOI_HOSTS:
        return None
    doi = unquote(parts.path.lstrip("/"))
    if not _DOI.fullmatch(doi):
        return f"'{doi or '(nothing)'}' is not a DOI (they look like 10.1007/s13555-021-00653-2)"
    return None


def check_sources(issue: Issue) -> list[Finding]:
    out: list[Finding] = []
    for snippet in issue.snippets:
        seen: dict[str, int] = {}
        for index, source in enumerate(snippet.meta.sources):
            line = snippet.front.line_of("sources", index, "url")
            where = (snippet.file, line)
            key = url_key(source.url)
            if key in seen:
                out.append(
                    Finding(
                        Severity.ERROR,
                        "source-duplicate",
                        f"source {source.url!r} is listed twice (also as source "
                        f"{seen[key] + 1}); list each source once",
                        *where,
                    )
                )
            seen.setdefault(key, index)
            if why := bad_doi(source.url):
                out.append(Finding(Severity.ERROR, "source-bad-doi", why, *where))
            if host := reserved_host(source.url):
                out.append(_reserved(source.url, host, *where))
    return out


def check_reserved_links(
    links: Iterable[str], located: Iterable[tuple[str | None, int | None]]
) -> list[Finding]:
    """Links in the body to reserved hosts (their file and line given alongside)."""
    out = []
    for url, (file, line) in zip(links, located, strict=True):
        if host := reserved_host(url):
            out.append(_reserved(url, host, file, line))
        elif why := bad_doi(url):
            out.append(Finding(Severity.ERROR, "link-bad-doi", why, file, line))
    return out


def _reserved(url: str, host: str, file: str | None, line: int | None) -> Finding:
    return Finding(
        Severity.ERROR,
        "link-reserved-host",
        f"{url!r} points at {host}, a name reserved for examples: no real page is there",
        file,
        line,
    )
