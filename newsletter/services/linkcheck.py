"""`newsletter check ISSUE --online`: every link and source fetched, broken ones reported as
errors and redirects as warnings, each answer kept for a day in the state folder.

HEAD first (cheap), GET when a server refuses HEAD (405, 501, and the 403 some publishers
give it); redirects are followed and the final address reported; a bounded pool of
threads and a timeout per request keep a slow site from stalling the check."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from newsletter import __version__
from newsletter.domain.checks import as_written, web_links
from newsletter.domain.findings import Finding, Severity
from newsletter.infra.files import open_atomically
from newsletter.services.build import Build

CACHE_FILE = "linkcheck.json"
DAY = 24 * 3600.0
RETRY_WITH_GET = frozenset({403, 405, 501})
USER_AGENT = f"newsletter-linkcheck/{__version__} (checking links before a send)"
Progress = Callable[[int, int, str], None]  # (done, total, url)


@dataclass(frozen=True)
class LinkResult:
    url: str
    status: int | None  # the final answer's status; None when there was none
    final_url: str
    error: str | None
    checked_at: float

    @property
    def broken(self) -> bool:
        return self.error is not None or self.status is None or self.status >= 400

    @property
    def redirected(self) -> bool:
        return self.final_url.rstrip("/") != self.url.rstrip("/")


class LinkChecker:
    def __init__(
        self,
        cache: Path | None,
        *,
        concurrency: int = 8,
        timeout: float = 10.0,
        max_age: float = DAY,
    ) -> None:
        self.cache = cache
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_age = max_age

    def check(
        self, urls: Iterable[str], on_progress: Progress | None = None
    ) -> dict[str, LinkResult]:
        """Each URL once, the cached ones without a request; `on_progress(done, total, url)`
        as each fetch ends (a slow host can take the whole timeout)."""
        wanted = list(dict.fromkeys(urls))
        known = self._load()
        now = time.time()
        fresh = {
            u: known[u] for u in wanted if u in known and now - known[u].checked_at < self.max_age
        }
        todo = [u for u in wanted if u not in fresh]
        if todo:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                pending = {pool.submit(self.fetch, url): url for url in todo}
                for done, future in enumerate(as_completed(pending), 1):
                    fresh[pending[future]] = future.result()
                    if on_progress is not None:
                        on_progress(done, len(todo), pending[future])
            self._save({**known, **fresh})
        return {u: fresh[u] for u in wanted}

    def fetch(self, url: str) -> LinkResult:
        result = self._request(url, "HEAD")
        if result.status in RETRY_WITH_GET:
            result = self._request(url, "GET")
        return result

    def _request(self, url: str, method: str) -> LinkResult:
        request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return LinkResult(url, answer.status, answer.geturl(), None, time.time())
        except urllib.error.HTTPError as exc:
            return LinkResult(url, exc.code, exc.geturl() or url, None, time.time())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return LinkResult(url, None, url, f"{type(exc).__name__}: {reason}", time.time())

    def _load(self) -> dict[str, LinkResult]:
        if self.cache is None or not self.cache.is_file():
            return {}
        try:
            data = json.loads(self.cache.read_text(encoding="utf-8"))
            return {url: LinkResult(**entry) for url, entry in data.items()}
        except (ValueError, TypeError):
            return {}  # a damaged cache is only a cache

    def _save(self, results: dict[str, LinkResult]) -> None:
        if self.cache is None:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        keep = {u: asdict(r) for u, r in results.items() if time.time() - r.checked_at < DAY}
        with open_atomically(self.cache) as handle:
            json.dump(keep, handle)


def links_to_check(html: str, base_url: str) -> list[str]:
    """The web links of an email, without our own pages (an archive page does not exist
    before the send, and personal links are checked by other means)."""
    own = base_url.rstrip("/") + "/"
    return [u for u in web_links(html) if not u.startswith(own)]


def online_findings(results: dict[str, LinkResult], files: list[tuple[str, str]]) -> list[Finding]:
    out: list[Finding] = []
    for url, result in results.items():
        shown, file, line = as_written(url, files)
        if result.broken:
            why = result.error or f"HTTP {result.status}"
            out.append(
                Finding(
                    Severity.ERROR, "link-broken", f"{shown!r} does not answer: {why}", file, line
                )
            )
        elif result.redirected:
            out.append(
                Finding(
                    Severity.WARNING,
                    "link-redirects",
                    f"{shown!r} redirects to {result.final_url!r}; link to that instead",
                    file,
                    line,
                )
            )
    return out


def check_online(
    build: Build,
    state_dir: Path,
    base_url: str,
    checker: LinkChecker | None = None,
    on_progress: Progress | None = None,
) -> list[Finding]:
    """The findings of fetching every link of a built issue (its probe render)."""
    checker = checker or LinkChecker(state_dir / CACHE_FILE)
    issue = build.issue
    files = [
        (issue.source.file, issue.source.source_text),
        *((s.file, s.source_text) for s in issue.snippets),
    ]
    results = checker.check(links_to_check(build.probe.html, base_url), on_progress)
    return online_findings(results, files)
