"""Link rules shared by rendering and checks: UTM tagging and what counts as a safe link."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True)
class Utm:
    """UTM parameters for one issue, and the hosts they belong on.

    Only links to `domains` (or their subdomains) are tagged: on doi.org or a journal the
    parameters say nothing to us and can break the link or its citation.
    """

    source: str
    medium: str
    campaign: str
    domains: tuple[str, ...] = ()


def host_in(url: str, domains: Iterable[str]) -> bool:
    """Whether the URL's host is one of `domains` or a subdomain of one (case-insensitive)."""
    host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    if not host:
        return False
    for domain in domains:
        domain = domain.strip().strip(".").lower()
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_local_http(url: str) -> bool:
    """Plain http on this machine: allowed for trying the whole flow locally."""
    return url.startswith("http://") and urlsplit(url).hostname in LOOPBACK_HOSTS


def tag_url(url: str, utm: Utm | None) -> str:
    """Add UTM parameters to an http(s) link on one of our own domains, keeping its query
    and any utm_ it already has; every other link is returned as written."""
    if utm is None:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not host_in(url, utm.domains):
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    wanted = [
        ("utm_source", utm.source),
        ("utm_medium", utm.medium),
        ("utm_campaign", utm.campaign),
    ]
    added = [(key, value) for key, value in wanted if key not in present]
    if not added:
        return url
    joined = f"{parts.query}&{urlencode(added)}" if parts.query else urlencode(added)
    return urlunsplit(parts._replace(path=parts.path or "/", query=joined))


def is_allowed_link(url: str) -> bool:
    """Email links must be absolute https (no spaces), or mailto."""
    if any(c.isspace() for c in url.strip()):
        return False
    parts = urlsplit(url.strip())
    if parts.scheme.lower() == "mailto":
        return True
    return parts.scheme.lower() == "https" and bool(parts.netloc)


def require_https(url: str) -> str:
    """Pydantic validator for front-matter URLs."""
    if not is_allowed_link(url) or url.lower().startswith("mailto:"):
        raise ValueError(f"must be an absolute https:// URL (got {url!r})")
    return url
