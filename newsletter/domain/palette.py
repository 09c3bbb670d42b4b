"""The email's built-in colours, light and dark, and the WCAG contrast they are held to.

Templates take every colour from the `[theme]` settings (`domain/theme.py` builds a light
and a dark `Scheme` from them); these schemes are its defaults, the sample's look. Both
keep every text/background pair at WCAG AA (4.5:1); the light one also stays above it when
a client inverts all colours itself (the Gmail app), and no pair relies on pure black,
which inverting clients handle worst. A custom theme's pairs are checked by `newsletter
check` (`theme.check_contrast`).
"""

from __future__ import annotations

from dataclasses import dataclass

AA_NORMAL_TEXT = 4.5


@dataclass(frozen=True)
class Scheme:
    page: str  # around the card, and behind the footer
    card: str  # behind the content
    text: str
    muted: str  # footer, sources, the "view online" line
    link: str
    rule: str  # dividers: decoration, not text
    brand: str  # the header band
    on_brand: str
    on_brand_muted: str  # the date in the header band


LIGHT = Scheme(
    page="#f4f5f7",
    card="#ffffff",
    text="#1f2933",
    muted="#52606d",
    link="#0b6e4f",
    rule="#e4e7eb",
    brand="#0b6e4f",
    on_brand="#ffffff",
    on_brand_muted="#e6f4ef",
)
DARK = Scheme(
    page="#111417",
    card="#1b1f24",
    text="#e4e7eb",
    muted="#a7b1bc",
    link="#5cd6a9",
    rule="#323941",
    brand="#0b5a41",
    on_brand="#ffffff",
    on_brand_muted="#d3eee3",
)

# Every (text, background) pair the templates put together.
TEXT_PAIRS: tuple[tuple[str, str], ...] = (
    ("text", "card"),
    ("muted", "card"),
    ("link", "card"),
    ("muted", "page"),
    ("link", "page"),
    ("on_brand", "brand"),
    ("on_brand_muted", "brand"),
)


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of a `#rrggbb` colour."""
    digits = color.lstrip("#")
    if len(digits) != 6:
        raise ValueError(f"expected #rrggbb, got {color!r}")
    r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2.x contrast ratio, from 1 (none) to 21 (black on white)."""
    high, low = sorted(
        (relative_luminance(foreground), relative_luminance(background)), reverse=True
    )
    return (high + 0.05) / (low + 0.05)


def inverted(color: str) -> str:
    """The colour a client that inverts everything would show."""
    digits = color.lstrip("#")
    return "#" + "".join(f"{255 - int(digits[i : i + 2], 16):02x}" for i in (0, 2, 4))
