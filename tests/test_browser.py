"""The reader's side in a real browser: Debian's chromium, driven by Playwright, clicks the
real buttons of the subscriber pages against the real app on a real port; the outcome is
checked in the database. Every page is screenshotted at 375 and 1280 px (the email at 600
and 375, light and dark) into the folder tests/browser.py names, and no page may log an
error to the console.

These test pages, not the store: SQLite only (the store's tests cover PostgreSQL)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser import Refused, Tab, browser_fixture, tab_fixture  # noqa: F401  (fixtures)
from conftest import eventually

from newsletter.domain.subscriber import Source, Status
from newsletter.domain.tokens import Purpose
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder
from newsletter.services.subscribers import Context

CLI = Context(Source.CLI)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def person(web):
    return web.store.add(
        "Reader.One@Example.com", name="Reader One", topics=["evidence"], context=CLI
    )


def sample_images(tab: Tab, base_url: str, *, folder: Path | None = None, served: str = ""):
    """The issues' images load from {base_url}/archive/images/, a host that does not exist
    here: answer them from the `serve` under test (`served`), or from the folder."""

    def answer(route) -> None:
        name = route.request.url.rsplit("/", 1)[1]
        if served:
            route.fulfill(response=route.fetch(url=f"{served}/archive/images/{name}"))
        elif folder is not None and (folder / name).is_file():
            route.fulfill(body=(folder / name).read_bytes(), content_type="image/png")
        else:
            route.fulfill(status=404)

    tab.page.route(f"{base_url}/archive/images/*", answer)


def test_unsubscribe_with_the_pages_own_button(web, person, tab: Tab):
    page = tab.page
    page.goto(f"{web.url}/u/{web.token(Purpose.UNSUBSCRIBE, person.id)}")
    assert page.get_by_role("heading", level=1).inner_text() == "Unsubscribe?"
    assert "Re***@example.com" in page.inner_text("main")
    tab.shoot("unsubscribe")
    assert web.store.get(person.email).status == Status.ACTIVE  # looking changes nothing
    tab.submit(page.get_by_role("button", name="Unsubscribe"))
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert "will not get Follicle Notes any more" in page.get_by_role("status").inner_text()
    tab.shoot("unsubscribed")
    assert web.store.get(person.email).status == Status.UNSUBSCRIBED
    event = web.store.events(person.id)[-1]
    assert (event.source, event.new_status) == ("web-form", "unsubscribed")
    assert "Chrome" in (event.user_agent or "")


def test_preferences_topics_pause_and_unsubscribe(web, person, tab: Tab):
    page = tab.page
    page.goto(f"{web.url}/preferences/{web.token(Purpose.PREFERENCES, person.id)}")
    assert page.get_by_label("The evidence").is_checked()
    tab.shoot("preferences")

    page.get_by_label("The evidence").uncheck()
    page.get_by_label("Safety").check()
    page.get_by_label("Realistic expectations").check()
    tab.submit(page.get_by_role("button", name="Save topics"))
    page.get_by_role("status").filter(has_text="Your topics are saved.").wait_for()
    assert sorted(web.store.get(person.email).topics) == ["expectations", "safety"]
    assert page.get_by_label("Safety").is_checked()  # the page shows what was stored
    assert not page.get_by_label("The evidence").is_checked()
    tab.shoot("preferences-saved")

    page.get_by_label("Pause for").select_option(label="3 months")
    tab.submit(page.get_by_role("button", name="Pause", exact=True))
    page.get_by_text("Paused until").wait_for()
    paused = web.store.get(person.email).paused_until
    assert paused and paused > datetime.now(UTC) + timedelta(days=89)
    assert paused < datetime.now(UTC) + timedelta(days=91)
    tab.shoot("preferences-paused")
    tab.submit(page.get_by_role("button", name="Resume now"))
    page.get_by_label("Pause for").wait_for()
    assert web.store.get(person.email).paused_until is None

    tab.submit(page.get_by_role("button", name="Unsubscribe from everything"))
    page.get_by_role("button", name="Subscribe again").wait_for()
    assert web.store.get(person.email).status == Status.UNSUBSCRIBED
    assert web.store.events(person.id)[-1].source == "preferences"
    tab.shoot("preferences-unsubscribed")


def confirmation_link(web, subscriber_id: int) -> str:
    path = web.workspace.state_dir / "outbox" / "confirmations" / f"sub-{subscriber_id}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    base = re.escape(web.workspace.settings.base_url)
    return re.search(f'href="({base}/confirm/[^"]+)"', html).group(1)


def test_subscribe_then_confirm_from_the_mail(web, tab: Tab):
    page = tab.page
    page.goto(f"{web.url}/subscribe")
    tab.shoot("subscribe")
    page.get_by_label("Email address").fill("New.Person@Example.org")
    page.get_by_label("First name (optional)").fill("New")
    page.get_by_label("How it works").check()
    tab.submit(page.get_by_role("button", name="Subscribe"))
    page.get_by_role("heading", name="Check your inbox").wait_for()
    tab.shoot("subscribe-sent")

    record = eventually(lambda: web.store.find("new.person@example.org"))
    assert (record.status, record.topics, record.name) == (Status.PENDING, ["mechanism"], "New")
    link = eventually(lambda: confirmation_link(web, record.id))  # the button in the mail
    page.goto(link.replace(web.workspace.settings.base_url, web.url, 1))
    assert "Ne***@example.org" in page.inner_text("main")
    tab.shoot("confirm")
    assert web.store.get("new.person@example.org").status == Status.PENDING
    tab.submit(page.get_by_role("button", name="Yes, subscribe me"))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    tab.shoot("confirmed")
    assert web.store.get("new.person@example.org").status == Status.ACTIVE
    assert [e.new_status for e in web.store.events(record.id)] == ["pending", "active"]


def test_a_bad_address_is_explained_on_the_form(web, tab: Tab):
    page = tab.page
    page.goto(f"{web.url}/subscribe")
    page.get_by_label("Email address").fill("someone@localhost")  # the browser accepts it
    tab.expect_console_error("status of 400")
    tab.submit(page.get_by_role("button", name="Subscribe"), status=400)
    page.get_by_role("alert").wait_for()
    assert "valid email address" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Email address").input_value() == "someone@localhost"  # kept
    tab.shoot("subscribe-error")


def test_a_bogus_link_gets_the_friendly_not_found_page(web, tab: Tab):
    tab.expect_console_error("status of 404")  # the browser reports the page's own status
    response = tab.page.goto(f"{web.url}/u/not-a-real-token")
    assert response.status == 404
    assert tab.page.get_by_role("heading", level=1).inner_text() == "Link not valid"
    assert "cut short when it was copied" in tab.page.inner_text("main")
    tab.shoot("not-found")


def test_preview_page(cli, sample, tab: Tab):
    workspace = open_workspace(sample.root)
    sample_images(tab, workspace.settings.base_url, folder=workspace.issues_dir / "images")
    result = cli("preview", "2026-12-welcome")
    assert result.code == 0, result.err
    path = Path(result.out.strip())
    tab.page.goto(path.as_uri())
    assert tab.page.frame_locator("iframe[title='Mobile preview']").locator("body").inner_text()
    # Side by side by design: 680 px and 375 px frames do not fit a phone.
    tab.shoot("preview", fits=False)


def test_the_email_light_and_dark(sample, tab: Tab):
    """The issue as the sample reader gets it (placeholders filled), at 600 and 375 px."""
    workspace = open_workspace(sample.root)
    sample_images(tab, workspace.settings.base_url, folder=workspace.issues_dir / "images")
    build = Builder(workspace).build("2026-12-welcome")
    assert "⟦" not in build.probe.html
    tab.page.set_content(build.probe.html)
    tab.page.get_by_text("Unsubscribe").first.wait_for()
    tab.shoot("email", (600, 375))
    tab.shoot("email", (600, 375), dark=True)


def test_archive_and_an_issue_page(sample, web, tab: Tab):
    """The public archive on `serve`: the index lists a published issue; its page reads."""
    sample.edit("issues/2026-12-welcome.md", "status: ready", "status: published")
    subject = "Can hundreds of tiny scalp pricks help thinning hair?"
    page = tab.page
    sample_images(tab, web.workspace.settings.base_url, served=web.url)
    response = page.goto(f"{web.url}/archive/")
    assert response.status == 200
    tab.shoot("archive")
    link = page.get_by_role("link", name=subject)
    with page.expect_navigation() as navigation:
        link.click()
    assert navigation.value.status == 200
    assert page.url == f"{web.url}/archive/2026-12-welcome/"
    assert page.get_by_role("heading", level=1).inner_text() == subject
    assert "⟦" not in page.content()  # no placeholder left for a reader to see
    tab.shoot("archive-issue")
    feed = page.request.get(f"{web.url}/feed.xml")
    assert feed.status == 200 and "application/atom+xml" in feed.headers["content-type"]
