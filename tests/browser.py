"""A real headless browser for the page tests: Debian's chromium driven by Playwright.

Playwright's own browser download is never used: it drives the system's `chromium`
(`executable_path`). Without one, the tests that need it skip with the reason; in CI
(`CI` set, as `.ci/run` does) they fail instead, because there they must run.

Screenshots go to NEWSLETTER_SCREENSHOTS, or `<repo>/.screenshots/`, and stay after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# Test-run variables, not settings (infra/settings.py OTHER_VARIABLES lets them be).
SCREENSHOTS = os.environ.get("NEWSLETTER_SCREENSHOTS")
CHROMIUM = os.environ.get("NEWSLETTER_CHROMIUM")
MISSING = "chromium not found: apt-get install chromium"
HEIGHT = 800  # the viewport; screenshots are full page, however long the page is


def chromium_path() -> str | None:
    """Debian's chromium on PATH, or the one NEWSLETTER_CHROMIUM names."""
    found = CHROMIUM or shutil.which("chromium")
    return found if found and Path(found).is_file() else None


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI the browser tests must run, not skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run here)", pytrace=False)
    pytest.skip(reason)


def screenshot_dir() -> Path:
    folder = Path(SCREENSHOTS or REPO / ".screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Refused(AssertionError):
    """The app refused a form post of its own page (403)."""


@dataclass
class Tab:
    """One page in a fresh browser context, with what went wrong in it recorded."""

    page: Any  # playwright.sync_api.Page
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # console errors a test asked for

    def watch(self) -> None:
        def console(message: Any) -> None:
            if message.type == "error":
                self.problems.append(f"console error: {message.text} ({message.location})")

        self.page.on("console", console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def expect_console_error(self, text: str) -> None:
        """A console error this test causes on purpose (the 404 page's own status)."""
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(e in p for e in self.expected)]

    def submit(self, button: Any, status: int = 200) -> Any:
        """Click a form's button and wait for the page it posts to; that page must answer
        `status` (a refusal says why, rather than a wait for text that never comes)."""
        with self.page.expect_navigation() as navigation:
            button.click()
        response = navigation.value
        if response.status != status:
            problem = AssertionError
            if response.status == 403:
                problem = Refused
                self.expect_console_error("status of 403")  # reported by the failure itself
            raise problem(
                f"{response.request.method} {response.url[:60]}… answered "
                f"{response.status}, not {status}: {response.text()[:200]}"
            )
        return response

    def shoot(
        self,
        name: str,
        widths: tuple[int, ...] = (375, 1280),
        *,
        dark: bool = False,
        fits: bool = True,
    ) -> list[Path]:
        """Full-page screenshots at each width: `<name>-<width>[-dark].png`. With `fits`,
        the page must not scroll sideways at that width (text cut off on a phone)."""
        folder = screenshot_dir()
        self.page.emulate_media(color_scheme="dark" if dark else "light")
        shots = []
        for width in widths:
            self.page.set_viewport_size({"width": width, "height": HEIGHT})
            if fits:
                wide = self.page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"{name} scrolls sideways at {width} px ({wide} px wide)"
            path = folder / f"{name}-{width}{'-dark' if dark else ''}.png"
            self.page.screenshot(path=str(path), full_page=True)
            shots.append(path)
        self.page.set_viewport_size({"width": 1280, "height": HEIGHT})
        self.page.emulate_media(color_scheme="light")
        return shots


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Any]:
    """One chromium for the whole module; each test gets its own context (`tab`)."""
    executable = chromium_path()
    if executable is None:
        named = f" (NEWSLETTER_CHROMIUM={CHROMIUM} is not a file)" if CHROMIUM else ""
        unavailable(MISSING + named)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(name="tab")
def tab_fixture(browser: Any) -> Iterator[Tab]:
    """A fresh context and page; fails the test if the page logged an error."""
    context = browser.new_context(viewport={"width": 1280, "height": HEIGHT})
    context.set_default_timeout(10_000)
    tab = Tab(context.new_page())
    tab.watch()
    try:
        yield tab
    finally:
        context.close()
    assert not tab.unexpected(), "\n".join(tab.unexpected())
