"""`Renderer.render(issue, public=True)`: the issue for the public web archive."""

from __future__ import annotations

import re

import pytest

from newsletter.domain.personalize import CLOSE, OPEN
from newsletter.errors import InputError
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

BASE = "https://news.follicle-notes.example.com"


@pytest.fixture
def builder(sample):
    return Builder(open_workspace(sample.root))


@pytest.fixture
def public(builder):
    issue = builder.library.compose("2027-01-evidence")
    return builder.renderer.render(issue, public=True).rendered


def test_nothing_per_recipient_is_left(public):
    for body in (public.html, public.text):
        assert OPEN not in body and CLOSE not in body
        assert "/u/" not in body and "/preferences/" not in body
        assert "Unsubscribe" not in body and "preferences" not in body.lower()
    assert public.placeholders() == (set(), set())


def test_the_greeting_falls_back_without_a_name(public):
    assert "Hi there," in public.html and "Hi there," in public.text


def test_a_subscribe_link_replaces_the_subscription_links(public):
    assert f'<a href="{BASE}/subscribe"' in public.html
    assert f"Subscribe: {BASE}/subscribe" in public.text
    assert "You get this email because" not in public.html + public.text


def test_no_view_online_link_and_no_utm(public):
    assert "/archive/" not in public.html + public.text
    assert "View this email" not in public.html
    assert "utm_" not in public.html + public.text


def test_the_content_and_its_sources_are_those_of_the_email(builder, public):
    email = builder.build("2027-01-evidence").rendered
    assert public.subject == email.subject
    sources = re.compile(r'id="source-\d+"')
    assert sources.findall(public.html) == sources.findall(email.html)
    assert (
        public.text.split("\nSources\n-------\n")[1].split("\n\n")[0]
        == (email.text.split("\nSources\n-------\n")[1].split("\n\n")[0])
    )


def test_a_template_that_leaves_a_placeholder_in_public_is_refused(sample, builder):
    sample.edit(
        "templates/email/issue.mjml.j2",
        "<mj-text><h1>{{ issue.subject }}</h1></mj-text>",
        "<mj-text><h1>{{ issue.subject }} {{ ph('email') }}</h1></mj-text>",
    )
    issue = builder.library.compose("2027-01-evidence")
    builder.renderer.render(issue)  # a subscriber's email may hold it
    with pytest.raises(InputError, match="public HTML still holds a per-recipient placeholder"):
        builder.renderer.render(issue, public=True)
