"""`check --online`: links fetched from a real local server: HEAD then GET when refused,
redirects followed and reported, broken links as errors, answers cached for a day."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from smtp_server import self_signed_cert

from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder
from newsletter.services.linkcheck import CACHE_FILE, LinkChecker, check_online


class Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[tuple[str, str]] = Counter()

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, method: str) -> None:
        self.server.hits[(method, self.path)] += 1
        if self.path == "/ok":
            self._status(200)
        elif self.path == "/moved":
            self._status(301, Location="/ok")
        elif self.path == "/no-head":
            self._status(405 if method == "HEAD" else 200)
        elif self.path == "/slow":
            time.sleep(2)
            self._status(200)
        else:
            self._status(404)

    def _status(self, code: int, **headers: str) -> None:
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def do_GET(self) -> None:
        self._answer("GET")


def serving(site: Site) -> Iterator[Site]:
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.shutdown()
        site.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serving(Site())


@pytest.fixture
def tls_site(tmp_path, monkeypatch) -> Iterator[Site]:
    cert, key = self_signed_cert(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted like a real CA's certificate
    site = Site()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    site.socket = context.wrap_socket(site.socket, server_side=True)
    yield from serving(site)


def test_each_kind_of_answer(site, tmp_path):
    checker = LinkChecker(tmp_path / CACHE_FILE, timeout=0.5)
    urls = [f"{site.url}{p}" for p in ("/ok", "/moved", "/no-head", "/gone", "/slow")]
    results = checker.check(urls)
    ok, moved, no_head, gone, slow = (results[u] for u in urls)
    assert not ok.broken and not ok.redirected
    assert not moved.broken and moved.redirected and moved.final_url == f"{site.url}/ok"
    assert not no_head.broken and site.hits[("GET", "/no-head")] == 1
    assert gone.broken and gone.status == 404
    assert slow.broken and "timed out" in (slow.error or "")
    refused = checker.check(["http://127.0.0.1:9/nothing-listens-here"])
    assert next(iter(refused.values())).broken


def test_progress_is_told_as_each_fetch_ends_and_cached_links_are_not_counted(site, tmp_path):
    cache = tmp_path / CACHE_FILE
    LinkChecker(cache).check([f"{site.url}/ok"])
    told: list[tuple[int, int, str]] = []
    urls = [f"{site.url}{p}" for p in ("/ok", "/moved", "/gone", "/no-head")]
    LinkChecker(cache).check(urls, on_progress=lambda *args: told.append(args))
    assert [(done, total) for done, total, _ in told] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(url for *_, url in told) == sorted(urls[1:])  # /ok came from the cache


def test_answers_are_kept_for_a_day(site, tmp_path):
    cache = tmp_path / CACHE_FILE
    LinkChecker(cache).check([f"{site.url}/ok", f"{site.url}/gone"])
    LinkChecker(cache).check([f"{site.url}/ok", f"{site.url}/gone"])
    assert site.hits[("HEAD", "/ok")] == 1 and site.hits[("HEAD", "/gone")] == 1
    LinkChecker(cache, max_age=0).check([f"{site.url}/ok"])
    assert site.hits[("HEAD", "/ok")] == 2
    cache.write_text("{ damaged")
    assert not LinkChecker(cache).check([f"{site.url}/ok"])[f"{site.url}/ok"].broken


def test_an_issue_checked_online_reports_broken_links_and_redirects_at_their_lines(
    tls_site, sample
):
    body = (
        f"A [good study]({tls_site.url}/ok) and [a dead one]({tls_site.url}/gone).\n\n"
        f"An [old address]({tls_site.url}/moved)."
    )
    source = f"\n  - title: A study\n    url: {tls_site.url}/no-head"
    sample.snippet("a", body=body, sources=source)
    sample.issue("t", ["a"])
    workspace = open_workspace(sample.root)
    build = Builder(workspace).build("t")
    base_url = workspace.settings.base_url  # our own pages are not fetched
    findings = {f.code: f for f in check_online(build, workspace.state_dir, base_url)}
    assert set(findings) == {"link-broken", "link-redirects"}
    broken, moved = findings["link-broken"], findings["link-redirects"]
    assert broken.file.endswith("issues/snippets/a.md") and broken.line == 10
    assert f"'{tls_site.url}/gone'" in broken.message and "HTTP 404" in broken.message
    assert moved.line == 12 and f"{tls_site.url}/ok" in moved.message
    assert (workspace.state_dir / CACHE_FILE).is_file()


def test_check_online_through_the_command(tls_site, sample, cli):
    sample.snippet(
        "a",
        body=f"A [dead study]({tls_site.url}/gone).",
        sources=f"\n  - title: A study\n    url: {tls_site.url}/ok",
    )
    sample.issue("t", ["a"])
    offline = cli("check", "t", "--json")
    assert offline.code == 0, offline.err  # nothing fetched without --online
    online = cli("check", "t", "--online", "--json")
    assert online.code == 1
    codes = {f["code"] for f in json.loads(online.out)["findings"]}
    assert "link-broken" in codes
