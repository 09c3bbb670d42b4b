"""The [theme] table: colours, font, logo and footer line reach every email, and the checks
hold the theme to WCAG AA and to a logo that exists."""

from __future__ import annotations

import re
import struct
import tomllib
import zlib
from pathlib import Path

import pytest

from newsletter.domain.mjml_rules import validate_mjml
from newsletter.domain.palette import AA_NORMAL_TEXT, DARK, LIGHT, TEXT_PAIRS, contrast_ratio
from newsletter.domain.theme import email_theme, font_stack, logo_file, schemes
from newsletter.domain.theme_checks import SettingsSource, check_contrast
from newsletter.infra.setting_tables import ThemeSettings
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder
from newsletter.services.render import Renderer

HEX = re.compile(r"#[0-9a-fA-F]{6}\b")
ISSUE = "2026-12-welcome"
BASE_URL = "https://news.follicle-notes.example.com"

# The palette the templates used before [theme] existed, written out: the default theme
# must keep every one of these exactly.
OLD_LIGHT = {
    "page": "#f4f5f7",
    "card": "#ffffff",
    "text": "#1f2933",
    "muted": "#52606d",
    "link": "#0b6e4f",
    "rule": "#e4e7eb",
    "brand": "#0b6e4f",
    "on_brand": "#ffffff",
    "on_brand_muted": "#e6f4ef",
}
OLD_DARK = {
    "page": "#111417",
    "card": "#1b1f24",
    "text": "#e4e7eb",
    "muted": "#a7b1bc",
    "link": "#5cd6a9",
    "rule": "#323941",
    "brand": "#0b5a41",
    "on_brand": "#ffffff",
    "on_brand_muted": "#d3eee3",
}

NAVY = """
[theme]
brand = "#1b2a4a"
accent = "#b9470b"
text = "#222222"
muted = "#5a5a66"
page = "#fdf6ec"
card = "#fffdf9"
on_brand = "#fff8e7"
font = "Georgia, 'Times New Roman', serif"
logo = "https://cdn.example.org/brand/logo.png"
logo_alt = "Follicle Notes logo"
logo_width = 150
footer_text = "Follicle Notes is written by two dermatology nurses in Springfield."
"""


def png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x1b\x2a\x4a")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def set_theme(sample, table: str) -> dict[str, int]:
    """Append a [theme] table to the sample's newsletter.toml; the line of each key."""
    path = sample.root / "newsletter.toml"
    before = path.read_text(encoding="utf-8")
    text = before.rstrip("\n") + "\n" + table.strip("\n") + "\n"
    path.write_text(text, encoding="utf-8")
    lines: dict[str, int] = {}
    table_name = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if number <= before.rstrip("\n").count("\n") + 1:
            continue
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            table_name = header.group(1)
        elif "=" in line:
            lines[f"{table_name}.{line.split('=')[0].strip()}"] = number
    return lines


def build(sample, slug: str = ISSUE):
    return Builder(open_workspace(sample.root)).build(slug)


def head_and_body(html: str) -> tuple[str, str]:
    head, body = html.split("<body", 1)
    return head, body


def dark_css(html: str) -> str:
    return head_and_body(html)[0].split("@media (prefers-color-scheme: dark)", 1)[1]


# ---- defaults: today's look, exactly -------------------------------------------------


def test_the_default_theme_is_the_old_palette_exactly():
    light, dark = schemes(ThemeSettings())
    assert vars(light) == OLD_LIGHT
    assert vars(dark) == OLD_DARK
    assert (light, dark) == (LIGHT, DARK)


def test_the_sample_issue_renders_with_the_old_colours_and_font(sample):
    html = build(sample).rendered.html
    body = head_and_body(html)[1]
    colours = {c.lower() for c in HEX.findall(html)}
    assert colours <= set(OLD_LIGHT.values()) | set(OLD_DARK.values())
    # Each colour where it was: the band, its date, text, links, dividers, page and card.
    assert f"background:{OLD_LIGHT['brand']}" in body
    assert f"color:{OLD_LIGHT['on_brand_muted']}" in body
    assert f"color:{OLD_LIGHT['text']}" in body
    assert f"color:{OLD_LIGHT['link']}" in body
    assert f"color:{OLD_LIGHT['muted']}" in body
    assert f"border-top:solid 1px {OLD_LIGHT['rule']}" in body
    assert f"background:{OLD_LIGHT['page']}" in body
    assert f"background:{OLD_LIGHT['card']}" in body
    dark = dark_css(html)
    for name in ("page", "card", "brand", "text", "muted", "link", "on_brand_muted", "rule"):
        assert f"{OLD_DARK[name]} !important" in dark, name
    assert "font-family:Helvetica, Arial, sans-serif" in body


def test_the_commented_theme_table_in_newsletter_toml_holds_the_defaults(sample):
    """Uncommented (with the logo lines left out), the sample's table changes nothing."""
    text = (sample.root / "newsletter.toml").read_text(encoding="utf-8")
    table = text[text.index("# [theme]\n") :]
    kept = [
        line[2:]
        for line in table.splitlines()
        if (line.startswith("# ") and "=" in line[2:]) or line.startswith("# [")
    ]
    kept = [line for line in kept if not line.startswith(("logo", "footer_text"))]
    settings = ThemeSettings.model_validate(tomllib.loads("\n".join(kept))["theme"])
    assert schemes(settings) == (LIGHT, DARK)
    assert settings.font == ThemeSettings().font


# ---- a custom theme ------------------------------------------------------------------


def test_a_custom_themes_colours_reach_inline_styles_and_the_head(sample):
    set_theme(sample, NAVY)
    result = build(sample)
    html = result.rendered.html
    head, body = head_and_body(html)
    assert "background:#1b2a4a" in body  # the band
    assert "background:#fdf6ec" in body  # the page
    assert "background:#fffdf9" in body  # the card
    assert "color:#222222" in body  # text, inlined
    assert "color:#b9470b" in body  # links, inlined from the head's inline style sheet
    assert "color:#5a5a66" in body  # footer
    # The head holds the dark scheme, made from the theme's brand and accent.
    _, dark = schemes(open_workspace(sample.root).settings.theme)
    assert f"{dark.brand} !important" in head and f"{dark.link} !important" in head
    assert "font-family:Georgia, 'Times New Roman', serif" in body
    # Only the theme's own colours (light and dark) reach the email.
    light = schemes(open_workspace(sample.root).settings.theme)[0]
    allowed = set(vars(light).values()) | set(vars(dark).values())
    shown = re.sub(r'<div style="display:none;[^"]*">', "", html)  # MJML's hidden preheader
    assert {c.lower() for c in HEX.findall(shown)} <= allowed
    assert not {OLD_LIGHT["brand"], OLD_LIGHT["text"], OLD_LIGHT["page"]} & set(
        c.lower() for c in HEX.findall(body)
    )
    assert not [f for f in result.findings if f.code.startswith("theme-")]


def test_the_footer_text_is_a_muted_line_in_the_html_and_the_text_part(sample):
    set_theme(sample, NAVY)
    rendered = build(sample).rendered
    line = "Follicle Notes is written by two dermatology nurses in Springfield."
    assert line in " ".join(rendered.text.split())
    at = rendered.html.index(line)
    assert "color:#5a5a66" in rendered.html[rendered.html.rindex("<div", 0, at) : at]
    # After the disclaimer, in both.
    assert rendered.text.index("not medical advice") < rendered.text.index("Follicle Notes is")
    assert rendered.html.index("not medical advice") < at


def test_the_footer_text_is_escaped_in_the_html(sample):
    set_theme(sample, '[theme]\nfooter_text = "Tips & <b>tricks</b>"\n')
    rendered = build(sample).rendered
    assert "Tips &amp; &lt;b&gt;tricks&lt;/b&gt;" in rendered.html
    assert "Tips & <b>tricks</b>" in rendered.text


def test_the_public_rendering_has_the_theme_too(sample):
    set_theme(sample, NAVY)
    workspace = open_workspace(sample.root)
    builder = Builder(workspace)
    issue = builder.library.compose(ISSUE)
    public = builder.renderer.render(issue, public=True).rendered
    assert "background:#1b2a4a" in public.html
    assert "Follicle Notes is written by two dermatology nurses" in public.text


# ---- contrast ------------------------------------------------------------------------


def test_a_low_contrast_pair_is_a_check_error_naming_the_pair_ratio_and_line(sample, cli):
    lines = set_theme(sample, '[theme]\ntext = "#999999"\n')
    result = build(sample)
    [finding] = [f for f in result.findings if f.code == "theme-contrast"]
    assert finding.severity == "error"
    assert Path(finding.file or "").name == "newsletter.toml"
    assert finding.line == lines["theme.text"]
    assert "text on card (light)" in finding.message
    assert "#999999 on #ffffff" in finding.message
    assert "2.85:1" in finding.message
    assert "4.5:1" in finding.message
    assert f"theme.text (newsletter.toml line {lines['theme.text']})" in finding.message
    assert "theme.card (not set: the default)" in finding.message
    assert not result.ok
    shown = cli("check", ISSUE)
    assert shown.code == 1
    said = " ".join(shown.out.split())
    assert f"newsletter.toml:{lines['theme.text']}: [theme] text on card (light)" in said


def test_a_low_contrast_background_points_at_the_background_key_when_only_it_is_set(sample):
    lines = set_theme(sample, '[theme]\npage = "#3a3f44"\n')
    findings = [f for f in build(sample).findings if f.code == "theme-contrast"]
    assert findings and all(f.line == lines["theme.page"] for f in findings)
    assert any("muted on page (light)" in f.message for f in findings)


def test_a_low_contrast_dark_override_names_the_dark_key(sample):
    lines = set_theme(sample, '[theme]\n\n[theme.dark]\nmuted = "#3a3f44"\n')
    findings = [f for f in build(sample).findings if f.code == "theme-contrast"]
    assert [f.message.split(":")[0] for f in findings] == [
        "[theme] muted on card (dark)",
        "[theme] muted on page (dark)",
    ]
    assert {f.line for f in findings} == {lines["theme.dark.muted"]}
    assert "theme.dark.card (not set: the default)" in findings[0].message


def test_a_key_set_in_the_environment_is_named_as_such(sample, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_THEME__TEXT", "#aaaaaa")
    [finding] = [f for f in build(sample).findings if f.code == "theme-contrast"]
    assert finding.file == "environment variable NEWSLETTER_THEME__TEXT"
    assert "#aaaaaa on #ffffff" in finding.message


def test_the_line_finder_reads_dotted_keys_and_inline_tables():
    source = SettingsSource(
        text='name = "x"\n[theme]\n# text = "#000000"\ndark.muted = "#111111"\n'
        'dark = { text = "#222222", on_brand = "#ffffff" }\n'
    )
    assert source.line("theme.text") is None  # commented out
    assert source.line("theme.dark.muted") == 4
    assert source.line("theme.dark.text") == 5
    assert source.line("theme.dark.brand") is None  # `on_brand` is not `brand`


@pytest.mark.parametrize(
    "values",
    [
        {"brand": "#1b2a4a", "accent": "#c2410c"},
        {"brand": "#ffd400", "on_brand": "#1f2933", "accent": "#7a3e00"},
        {"brand": "#6a1b9a", "accent": "#1565c0", "card": "#fafafa"},
    ],
    ids=["navy", "yellow-band", "purple"],
)
def test_derived_colours_keep_every_pair_readable(values):
    """on_brand_muted, rule and the dark link and band are made from the theme's colours;
    the ones that are text stay AA whenever the colours they come from are."""
    theme = ThemeSettings(**values)
    light, dark = schemes(theme)
    assert light.link == values["accent"]
    for scheme in (light, dark):
        for pair in TEXT_PAIRS:
            ratio = contrast_ratio(getattr(scheme, pair[0]), getattr(scheme, pair[1]))
            assert ratio >= AA_NORMAL_TEXT, (pair, scheme)
        assert scheme.rule not in (scheme.card, scheme.text)
    assert dark.brand != DARK.brand  # the brand follows into dark mode
    assert dark.link != DARK.link  # and so does the accent
    assert check_contrast(theme) == []


def test_a_dark_brand_follows_into_dark_mode_as_it_is_a_bright_one_toned_down():
    """Seen in the screenshots: a navy band darkened towards the dark page vanished."""
    assert schemes(ThemeSettings(brand="#14213d"))[1].brand == "#14213d"
    toned = schemes(ThemeSettings(brand="#c2410c"))[1].brand
    assert contrast_ratio(toned, DARK.page) < contrast_ratio("#c2410c", DARK.page)
    assert contrast_ratio("#ffffff", toned) >= AA_NORMAL_TEXT


# ---- dark ----------------------------------------------------------------------------


def test_a_dark_override_is_used_under_prefers_color_scheme(sample):
    set_theme(
        sample,
        NAVY + '\n[theme.dark]\nbrand = "#0d1526"\ncard = "#141a26"\naccent = "#ffb37a"\n',
    )
    html = build(sample).rendered.html
    dark = dark_css(html)
    assert ".nl-card, .nl-card > table { background: #141a26 !important; }" in dark
    assert ".nl-brand, .nl-brand > table { background: #0d1526 !important; }" in dark
    assert ".nl-text a { color: #ffb37a !important; }" in dark
    assert f"background: {OLD_DARK['page']} !important" in dark  # not overridden: built-in
    body = head_and_body(html)[1]
    assert "#141a26" not in body and "#0d1526" not in body  # dark colours stay in the head
    assert "background:#fffdf9" in body  # light ones inline


def test_without_a_dark_table_a_custom_brand_and_accent_follow_into_dark_mode(sample):
    set_theme(sample, NAVY)
    dark = dark_css(build(sample).rendered.html)
    _, scheme = schemes(open_workspace(sample.root).settings.theme)
    assert f".nl-brand, .nl-brand > table {{ background: {scheme.brand} !important; }}" in dark
    assert scheme.brand != OLD_DARK["brand"]
    assert f".nl-text a {{ color: {scheme.link} !important; }}" in dark
    assert contrast_ratio(scheme.link, scheme.card) >= AA_NORMAL_TEXT
    assert f"background: {OLD_DARK['card']} !important" in dark  # the rest: built-in


# ---- logo ----------------------------------------------------------------------------


def logo_tag(html: str) -> str:
    match = re.search(r'<img\b[^>]*src="[^"]*logo[^"]*"[^>]*>', html)
    assert match, "no logo image"
    return match.group(0)


def test_a_logo_url_is_shown_in_the_header_band_at_its_width_with_alt(sample):
    set_theme(sample, NAVY)
    result = build(sample)
    html = result.rendered.html
    tag = logo_tag(html)
    assert 'src="https://cdn.example.org/brand/logo.png"' in tag
    assert 'alt="Follicle Notes logo"' in tag
    assert 'width="150"' in tag
    band = html.index("background:#1b2a4a")
    assert band < html.index("https://cdn.example.org/brand/logo.png") < html.index("<h1")
    # The date beside it stays on one line on phones (it wrapped in a serif font).
    assert '<span style="white-space:nowrap">3 December 2026</span>' in html
    assert not [f for f in result.findings if f.code.startswith(("theme-", "image-"))]


def test_a_local_logo_is_served_from_the_archive_images(sample):
    sample.write("issues/images/logo.png", png())
    lines = set_theme(
        sample, '[theme]\nlogo = "logo.png"\nlogo_alt = "Follicle Notes"\nlogo_width = 96\n'
    )
    result = build(sample)
    tag = logo_tag(result.rendered.html)
    assert f'src="{BASE_URL}/archive/images/logo.png"' in tag
    assert 'width="96"' in tag and 'alt="Follicle Notes"' in tag
    assert not [f for f in result.findings if f.severity == "error"], result.findings
    assert lines  # the table was written
    # `issues/images/...` written out in full is the same file.
    text = (sample.root / "newsletter.toml").read_text(encoding="utf-8")
    (sample.root / "newsletter.toml").write_text(
        text.replace('"logo.png"', '"issues/images/logo.png"'), encoding="utf-8"
    )
    assert f"{BASE_URL}/archive/images/logo.png" in build(sample).rendered.html


def test_a_logo_in_a_subfolder_is_an_error_not_a_broken_image(sample):
    # serve and the archive publish only files directly in issues/images/ (as for snippet
    # images): a logo elsewhere would be a 404 in every email.
    sample.write("issues/images/brand/logo.png", png())
    set_theme(sample, '[theme]\nlogo = "brand/logo.png"\nlogo_alt = "Follicle Notes"\n')
    codes = {f.code for f in build(sample).findings if f.severity == "error"}
    assert "theme-logo-invalid" in codes


def test_a_missing_local_logo_is_a_check_error_at_its_line(sample):
    lines = set_theme(sample, '[theme]\nlogo = "logo.png"\nlogo_alt = "Follicle Notes"\n')
    [finding] = [f for f in build(sample).findings if f.code == "theme-logo-missing"]
    assert finding.severity == "error"
    assert Path(finding.file or "").name == "newsletter.toml"
    assert finding.line == lines["theme.logo"]
    assert "issues/images/logo.png does not exist" in finding.message


@pytest.mark.parametrize("logo", ["http://example.org/logo.png", "../secret.png", "/etc/x.png"])
def test_a_logo_that_is_neither_https_nor_under_issues_images_is_an_error(sample, logo):
    lines = set_theme(sample, f'[theme]\nlogo = "{logo}"\nlogo_alt = "Logo"\n')
    [finding] = [f for f in build(sample).findings if f.code == "theme-logo-invalid"]
    assert finding.line == lines["theme.logo"]
    assert logo_file(logo) is None


def test_a_logo_without_alt_is_a_settings_error(sample, cli):
    lines = set_theme(sample, '[theme]\nlogo = "https://cdn.example.org/logo.png"\n')
    shown = cli("check", ISSUE)
    assert shown.code == 2
    said = " ".join((shown.out + shown.err).split())
    assert "logo_alt is required with a logo" in said
    assert f"newsletter.toml:{lines['theme.logo'] - 1}" in said  # the [theme] line


# ---- font ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "css"),
    [
        ("Helvetica, Arial, sans-serif", "Helvetica, Arial, sans-serif"),
        ('"Open Sans", Arial, sans-serif', "'Open Sans', Arial, sans-serif"),
        ("Open Sans,Roboto Slab , serif", "'Open Sans', 'Roboto Slab', serif"),
        ("'Unclosed, Arial", "Unclosed, Arial"),
        ("Font 3, -apple-system, system-ui", "'Font 3', -apple-system, system-ui"),
        (", ,", "Helvetica, Arial, sans-serif"),
    ],
)
def test_the_font_stack_is_well_formed_css(given, css):
    assert font_stack(given) == css
    assert '"' not in font_stack(given) and ";" not in font_stack(given)


def test_the_font_is_used_for_all_text_and_quoted_safely(sample):
    set_theme(sample, """[theme]\nfont = '"Open Sans", "Segoe UI", Arial, sans-serif'\n""")
    html = build(sample).rendered.html
    body = head_and_body(html)[1]
    expected = "font-family:'Open Sans', 'Segoe UI', Arial, sans-serif"
    text_blocks = re.findall(r'<div style="([^"]*)"', body)
    with_text = [s for s in text_blocks if "font-size:16px" in s or "font-size:13px" in s]
    assert with_text and all(expected in s for s in with_text)
    assert "Helvetica" not in html


# ---- MJML with every option ----------------------------------------------------------


def test_mjml_validation_passes_with_every_theme_option(sample):
    sample.write("issues/images/logo.png", png())
    set_theme(
        sample,
        NAVY.replace("https://cdn.example.org/brand/logo.png", "logo.png")
        + '\n[theme.dark]\nbrand = "#0d1526"\naccent = "#ffb37a"\ntext = "#f1f1f1"\n'
        'muted = "#b8b8c4"\npage = "#0b0e14"\ncard = "#141a26"\non_brand = "#fff8e7"\n',
    )
    workspace = open_workspace(sample.root)
    builder = Builder(workspace)
    builder.renderer.validate_templates()
    result = builder.build(ISSUE)
    assert validate_mjml(result.mjml) == []
    issue = builder.library.compose(ISSUE)
    assert validate_mjml(builder.renderer.render(issue, public=True).mjml) == []
    assert result.ok, result.findings
    assert not [f for f in result.findings if f.code.startswith("theme-")]


# ---- the confirmation email ----------------------------------------------------------


def render_confirmation(sample):
    workspace = open_workspace(sample.root)
    renderer = Renderer(workspace.templates_dir, workspace.settings)
    return renderer.render_pair(
        "email/confirm.mjml.j2",
        "email/confirm.txt.j2",
        {
            "newsletter": renderer.newsletter_context(),
            "subject": "Please confirm",
            "ttl_days": 7,
        },
        slug="confirmation",
        subject="Please confirm",
        preheader="",
    )


def test_the_confirmation_email_uses_the_theme(sample):
    set_theme(sample, NAVY)
    rendering = render_confirmation(sample)
    assert validate_mjml(rendering.mjml) == []
    html = rendering.rendered.html
    body = head_and_body(html)[1]
    assert "background:#1b2a4a" in body  # the band, and the button
    assert "background-color:#fdf6ec" in body
    assert "color:#222222" in body
    assert "font-family:Georgia, 'Times New Roman', serif" in body
    assert 'src="https://cdn.example.org/brand/logo.png"' in logo_tag(html)
    assert ".nl-card, .nl-card > table" in dark_css(html)
    assert not {OLD_LIGHT["brand"], OLD_LIGHT["page"]} & {c.lower() for c in HEX.findall(body)}


def test_the_confirmation_email_with_the_default_theme_shows_the_name_in_the_band(sample):
    html = render_confirmation(sample).rendered.html
    band = html.index(f"background:{OLD_LIGHT['brand']}")
    assert html.index("Follicle Notes", band) < html.index("Confirm your subscription", band)


def test_email_theme_builds_the_logo_url_from_the_base_url():
    theme = email_theme(
        ThemeSettings(logo="brand_logo.png", logo_alt="A", logo_width=80), "https://x.example/"
    )
    assert theme.logo is not None
    assert theme.logo.src == "https://x.example/archive/images/brand_logo.png"
    assert (theme.logo.file, theme.logo.width) == ("brand_logo.png", 80)
    assert email_theme(ThemeSettings(footer_text="  "), "https://x.example").footer_text is None
