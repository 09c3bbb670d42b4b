"""Dark mode: declared to clients, styled from a palette whose every pair passes WCAG AA.

The templates take their colours from the [theme] settings; with none set (the sample) the
theme is this built-in palette, so these tests pin it. Custom themes: test_theme.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.domain.palette import (
    AA_NORMAL_TEXT,
    DARK,
    LIGHT,
    TEXT_PAIRS,
    contrast_ratio,
    inverted,
)
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

HEX = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "email"


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#123456", "#123456") == pytest.approx(1.0)


@pytest.mark.parametrize("scheme", [LIGHT, DARK], ids=["light", "dark"])
@pytest.mark.parametrize("pair", TEXT_PAIRS, ids=lambda pair: "-on-".join(pair))
def test_every_text_and_background_pair_passes_wcag_aa(scheme, pair):
    foreground, background = (getattr(scheme, name) for name in pair)
    assert contrast_ratio(foreground, background) >= AA_NORMAL_TEXT


@pytest.mark.parametrize("pair", TEXT_PAIRS, ids=lambda pair: "-on-".join(pair))
def test_light_pairs_stay_readable_when_a_client_inverts_every_colour(pair):
    """The Gmail app ignores our dark styles and inverts the light ones itself."""
    foreground, background = (inverted(getattr(LIGHT, name)) for name in pair)
    assert contrast_ratio(foreground, background) >= AA_NORMAL_TEXT


def test_every_colour_in_the_email_templates_comes_from_the_theme():
    for template in TEMPLATES.glob("*.j2"):
        assert not HEX.findall(template.read_text(encoding="utf-8")), template.name


@pytest.fixture
def html(sample) -> str:
    sample.snippet("a", body="Text with [a link](https://example.org/x).")
    sample.issue("t", ["a"])
    return Builder(open_workspace(sample.root)).build("t").rendered.html


def test_the_email_declares_it_supports_light_and_dark(html):
    head = html.split("<body", 1)[0]
    assert '<meta name="color-scheme" content="light dark">' in head
    assert '<meta name="supported-color-schemes" content="light dark">' in head


def test_dark_styles_use_the_dark_palette_and_beat_inline_colours(html):
    head = html.split("<body", 1)[0]
    dark = head.split("@media (prefers-color-scheme: dark)", 1)[1]
    for color in (DARK.page, DARK.card, DARK.text, DARK.muted, DARK.link, DARK.brand):
        assert f"{color} !important" in dark, color
    body = html.split("<body", 1)[1]
    assert "prefers-color-scheme" not in body  # the query stays in the head, not inlined


def test_only_palette_colours_reach_the_html(html):
    palette = {c.lower() for scheme in (LIGHT, DARK) for c in vars(scheme).values()}
    assert {c.lower() for c in HEX.findall(html)} <= palette
