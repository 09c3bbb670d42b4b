"""The email's look from the `[theme]` settings: a light and a dark `Scheme`, the font
stack, the logo and the footer line. What the checks say about them is
domain/theme_checks.py.

Pure: settings values in (anything with `ThemeSettings`' attributes), a `Theme` out. How
the colours the theme does not name are made:

- `link` is `accent`.
- `rule` (dividers, decoration only) is the card mixed 12% (15% in dark) towards the text.
- `on_brand_muted` (the date in the header band) is `on_brand` mixed 15% towards the band,
  less when that would drop it under WCAG AA on the band.
- Dark (`prefers-color-scheme: dark`): each colour `[theme.dark]` sets, else the built-in
  dark scheme; but a custom light `brand` (and its `on_brand`) or `accent` follows into the
  dark scheme when `[theme.dark]` does not name one: the band is the brand, darkened 20%
  towards the dark page when it is bright against it (over 2:1) under lighter text (a
  navy band stays as it is), the link is the accent
  made lighter (same hue) until it passes AA on the dark card and page.
- A derived colour keeps the hand-tuned built-in value while the colours it derives from
  are the built-in ones, so the default theme is exactly the built-in palette.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from markupsafe import Markup

from newsletter.domain.images import LOCAL_PREFIX, URL_PATH, image_file_name
from newsletter.domain.palette import (
    AA_NORMAL_TEXT,
    DARK,
    LIGHT,
    Scheme,
    contrast_ratio,
)

IMAGES_FOLDER = "issues/images"
DEFAULT_FONT = "Helvetica, Arial, sans-serif"
GENERIC_FONTS = frozenset(
    {"serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui", "ui-sans-serif"}
    | {"ui-serif", "ui-monospace", "ui-rounded", "math", "emoji", "fangsong"}
    | {"-apple-system", "blinkmacsystemfont", "inherit", "initial"}
)
RULE_MIX = 0.12
DARK_RULE_MIX = 0.15
ON_BRAND_MUTED_MIX = 0.15
DARK_BRAND_MIX = 0.2
DARK_BRAND_GLARE = 2.0  # a band this much brighter than the dark page is toned down


class DarkValues(Protocol):
    brand: str | None
    accent: str | None
    text: str | None
    muted: str | None
    page: str | None
    card: str | None
    on_brand: str | None


class ThemeValues(Protocol):
    """What `[theme]` holds (`newsletter.infra.settings.ThemeSettings`)."""

    brand: str
    accent: str
    text: str
    muted: str
    page: str
    card: str
    on_brand: str
    font: str
    logo: str | None
    logo_alt: str | None
    logo_width: int
    footer_text: str | None

    @property
    def dark(self) -> DarkValues: ...


@dataclass(frozen=True)
class Logo:
    src: str  # an https URL, or {base_url}/archive/images/<file>
    alt: str
    width: int  # CSS pixels
    file: str | None = None  # the file under issues/images/, for a local logo


@dataclass(frozen=True)
class Theme:
    """What the email templates get as `theme`, `colors` (light) and `dark`."""

    light: Scheme
    dark: Scheme
    font: Markup  # a CSS font-family value, safe in an attribute and in a style sheet
    logo: Logo | None = None
    footer_text: str | None = None


# ---- colours -------------------------------------------------------------------------


def _rgb(color: str) -> tuple[int, int, int]:
    digits = color.lstrip("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def mix(color: str, other: str, amount: float) -> str:
    """`color` moved `amount` (0..1) of the way towards `other`, in sRGB."""
    return "#" + "".join(
        f"{round(a + (b - a) * amount):02x}" for a, b in zip(_rgb(color), _rgb(other), strict=True)
    )


def _softened(foreground: str, background: str) -> str:
    """The foreground a little towards the background, as long as it stays AA on it."""
    steps = 15
    for step in range(steps, -1, -1):
        candidate = mix(foreground, background, ON_BRAND_MUTED_MIX * step / steps)
        if contrast_ratio(candidate, background) >= AA_NORMAL_TEXT:
            return candidate
    return foreground


def _readable(color: str, text: str, backgrounds: tuple[str, ...]) -> str:
    """`color` with its hue and saturation, made lighter (or darker, where the text is the
    darker colour) in steps until it is AA on every background; `text` if none is."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*(c / 255 for c in _rgb(color)))
    target = 1.0 if _lighter(text, backgrounds[0]) else 0.0
    for step in range(21):
        level = lightness + (target - lightness) * step / 20
        rgb = colorsys.hls_to_rgb(hue, level, saturation)
        candidate = "#" + "".join(f"{round(c * 255):02x}" for c in rgb)
        if all(contrast_ratio(candidate, bg) >= AA_NORMAL_TEXT for bg in backgrounds):
            return candidate
    return text


def _lighter(color: str, than: str) -> bool:
    return sum(_rgb(color)) > sum(_rgb(than))


def light_scheme(theme: ThemeValues) -> Scheme:
    text, card = theme.text.lower(), theme.card.lower()
    brand, on_brand = theme.brand.lower(), theme.on_brand.lower()
    return Scheme(
        page=theme.page.lower(),
        card=card,
        text=text,
        muted=theme.muted.lower(),
        link=theme.accent.lower(),
        rule=LIGHT.rule if (text, card) == (LIGHT.text, LIGHT.card) else mix(card, text, RULE_MIX),
        brand=brand,
        on_brand=on_brand,
        on_brand_muted=(
            LIGHT.on_brand_muted
            if (brand, on_brand) == (LIGHT.brand, LIGHT.on_brand)
            else _softened(on_brand, brand)
        ),
    )


def dark_scheme(theme: ThemeValues, light: Scheme | None = None) -> Scheme:
    light = light or light_scheme(theme)
    dark = theme.dark

    def own(key: str) -> str | None:
        value = getattr(dark, key)
        return value.lower() if value else None

    page = own("page") or DARK.page
    card = own("card") or DARK.card
    text = own("text") or DARK.text
    if own("brand"):
        brand, on_brand = own("brand") or "", own("on_brand") or DARK.on_brand
    elif light.brand == LIGHT.brand:
        brand, on_brand = DARK.brand, own("on_brand") or light.on_brand
    else:  # the custom brand follows into dark mode, a little darker under light text
        on_brand = own("on_brand") or light.on_brand
        glaring = contrast_ratio(light.brand, page) > DARK_BRAND_GLARE
        darker = _lighter(on_brand, light.brand) and glaring
        brand = mix(light.brand, page, DARK_BRAND_MIX) if darker else light.brand
    if own("accent"):
        link = own("accent") or ""
    elif light.link == LIGHT.link:
        link = DARK.link
    else:
        link = _readable(light.link, text, (card, page))
    return Scheme(
        page=page,
        card=card,
        text=text,
        muted=own("muted") or DARK.muted,
        link=link,
        rule=DARK.rule
        if (text, card) == (DARK.text, DARK.card)
        else mix(card, text, DARK_RULE_MIX),
        brand=brand,
        on_brand=on_brand,
        on_brand_muted=(
            DARK.on_brand_muted
            if (brand, on_brand) == (DARK.brand, DARK.on_brand)
            else _softened(on_brand, brand)
        ),
    )


def schemes(theme: ThemeValues) -> tuple[Scheme, Scheme]:
    """The (light, dark) colours of a theme."""
    light = light_scheme(theme)
    return light, dark_scheme(theme, light)


# ---- font, logo ----------------------------------------------------------------------

_FAMILY = re.compile(r"^[A-Za-z0-9 -]+$")


def font_stack(value: str) -> Markup:
    """A well-formed CSS font-family list: names with spaces or digits in single quotes,
    generic families bare, stray quotes dropped (the settings pattern already allows only
    letters, digits, spaces, commas, hyphens and quotes). Safe unescaped in a double-quoted
    attribute and in a style sheet: it can hold neither `"`, `;`, `<` nor an open quote."""
    families = []
    for part in value.split(","):
        name = " ".join(part.replace('"', " ").replace("'", " ").split())
        if not name or not _FAMILY.match(name):
            continue
        plain = name.lower() in GENERIC_FONTS or re.fullmatch(r"[A-Za-z-][A-Za-z-]*", name)
        families.append(name if plain else f"'{name}'")
    return Markup(", ".join(families) if families else DEFAULT_FONT)


def logo_file(value: str) -> str | None:
    """The file in issues/images/ of a local logo (`logo.png`, `images/logo.png`,
    `issues/images/logo.png`), or None for anything else: a URL, a subfolder, a path that
    leaves the folder, a type the archive does not publish (the same rule as snippet
    images, so the logo the email points at is one `serve` answers)."""
    path = value.strip().removeprefix("./").removeprefix(IMAGES_FOLDER + "/")
    return image_file_name(path.removeprefix(LOCAL_PREFIX))


def _logo(theme: ThemeValues, base_url: str) -> Logo | None:
    if not theme.logo:
        return None
    alt, width = (theme.logo_alt or "").strip(), theme.logo_width
    value = theme.logo.strip()
    if value.lower().startswith("https://"):
        return Logo(src=value, alt=alt, width=width)
    file = logo_file(value)
    if file is None:  # reported by `check_theme`; the src shows what was given
        return Logo(src=value, alt=alt, width=width)
    return Logo(src=f"{base_url}{URL_PATH}/{quote(file)}", alt=alt, width=width, file=file)


def email_theme(theme: ThemeValues, base_url: str) -> Theme:
    """Everything the email templates take from `[theme]`."""
    light, dark = schemes(theme)
    footer = (theme.footer_text or "").strip()
    return Theme(
        light=light,
        dark=dark,
        font=font_stack(theme.font),
        logo=_logo(theme, base_url.rstrip("/")),
        footer_text=footer or None,
    )
