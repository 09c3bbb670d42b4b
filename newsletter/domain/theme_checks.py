"""What the checks say about the `[theme]`: text and background pairs of both schemes that
fail WCAG AA (naming the pair, its ratio and the setting's line), a logo that is neither
https nor a file in issues/images/, and reserved characters in the footer or logo text.

Pure: settings values and where they were written in, findings out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from newsletter.domain.findings import Finding, Severity
from newsletter.domain.images import URL_PATH
from newsletter.domain.palette import AA_NORMAL_TEXT, LIGHT, TEXT_PAIRS, Scheme, contrast_ratio
from newsletter.domain.personalize import CLOSE, OPEN
from newsletter.domain.theme import IMAGES_FOLDER, ThemeValues, logo_file, schemes

CONFIG_FILE = "newsletter.toml"
ENV_PREFIX = "NEWSLETTER_"

# Which setting makes each colour of a scheme (`link` is the accent; the derived ones name
# the setting they come from).
_KEYS = {
    "page": "page",
    "card": "card",
    "text": "text",
    "muted": "muted",
    "link": "accent",
    "brand": "brand",
    "on_brand": "on_brand",
    "on_brand_muted": "on_brand",
}


@dataclass(frozen=True)
class SettingsSource:
    """Where settings were written: the file's shown name and text, and the environment
    (which overrides the file), to point a finding at the line to change."""

    file: str = CONFIG_FILE
    text: str = ""
    environ: Mapping[str, str] | None = None

    def variable(self, dotted: str) -> str | None:
        """The NEWSLETTER_THEME__... variable that sets `dotted`, when one does."""
        wanted = ENV_PREFIX + dotted.replace(".", "__").upper()
        return next((n for n in (self.environ or {}) if n.upper() == wanted), None)

    def line(self, dotted: str) -> int | None:
        """The line of `theme.text` or `theme.dark.text` in the file, when it is there."""
        *tables, key = dotted.split(".")
        current = ""
        for number, raw in enumerate(self.text.splitlines(), start=1):
            line = raw.strip()
            header = re.match(r"^\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
            if header:
                current = ".".join(p.strip().strip("\"'") for p in header.group(1).split("."))
                continue
            if line.startswith("#"):
                continue
            assigned = re.match(r"^([A-Za-z0-9_.\"' -]+?)\s*=", line)
            if not assigned:
                continue
            name = ".".join(p.strip().strip("\"'") for p in assigned.group(1).split("."))
            full = f"{current}.{name}" if current else name
            inline = re.search(rf"[{{,]\s*{re.escape(key)}\s*=", line)
            if full == dotted or (full == ".".join(tables) and inline):
                return number  # `dark = { text = "#..." }` inline tables too
        return None

    def where(self, dotted: str) -> tuple[str | None, int | None, str]:
        """(file, line, how to say it) for one key."""
        variable = self.variable(dotted)
        if variable:
            return f"environment variable {variable}", None, f"environment variable {variable}"
        line = self.line(dotted)
        if line:
            return self.file, line, f"{self.file} line {line}"
        return None, None, "not set: the default"


def _pair_finding(
    scheme_name: str,
    scheme: Scheme,
    pair: tuple[str, str],
    keys: tuple[str, str],
    source: SettingsSource,
    notes: Mapping[str, str],
) -> Finding:
    foreground, background = (getattr(scheme, name) for name in pair)
    ratio = contrast_ratio(foreground, background)
    said = []
    place: tuple[str | None, int | None] = (None, None)
    for key in keys:
        file, line, how = source.where(key)
        said.append(f"{key} ({notes.get(key, how)})")
        if place == (None, None) and file:
            place = (file, line)
    label = " on ".join(pair)
    return Finding(
        Severity.ERROR,
        "theme-contrast",
        f"[theme] {label} ({scheme_name}): {foreground} on {background} has a contrast of "
        f"{ratio:.2f}:1, under WCAG AA's {AA_NORMAL_TEXT}:1; change {' or '.join(said)}",
        *place,
    )


def check_contrast(theme: ThemeValues, source: SettingsSource | None = None) -> list[Finding]:
    """One error per text/background pair of the theme under WCAG AA, light then dark."""
    source = source or SettingsSource()
    light, dark = schemes(theme)
    dark_values = theme.dark
    out: list[Finding] = []
    for scheme_name, scheme, prefix in (("light", light, "theme"), ("dark", dark, "theme.dark")):
        failing = {
            pair
            for pair in TEXT_PAIRS
            if contrast_ratio(getattr(scheme, pair[0]), getattr(scheme, pair[1])) < AA_NORMAL_TEXT
        }
        for pair in TEXT_PAIRS:
            if pair not in failing:
                continue
            if pair == ("on_brand_muted", "brand") and ("on_brand", "brand") in failing:
                continue  # derived from on_brand: the same fix
            notes: dict[str, str] = {}
            if prefix == "theme.dark":
                for field in ("brand", "accent", "on_brand"):
                    if getattr(dark_values, field) is None and getattr(theme, field).lower() != (
                        getattr(LIGHT, "link" if field == "accent" else field)
                    ):
                        notes[f"theme.dark.{field}"] = f"not set: follows theme.{field}"
            keys = (f"{prefix}.{_KEYS[pair[0]]}", f"{prefix}.{_KEYS[pair[1]]}")
            out.append(_pair_finding(scheme_name, scheme, pair, keys, source, notes))
    return out


def check_theme(
    theme: ThemeValues,
    *,
    source: SettingsSource | None = None,
    image_exists: Callable[[str], bool] = lambda path: True,
    base_url: str = "",
) -> list[Finding]:
    """Every problem of the theme: contrast, the logo, reserved characters.
    `image_exists(path)` says whether issues/images/<path> is there."""
    source = source or SettingsSource()
    out = check_contrast(theme, source)
    if theme.logo:
        value = theme.logo.strip()
        file, line, _ = source.where("theme.logo")
        local = logo_file(value)
        if value.lower().startswith("https://"):
            pass
        elif local is None:
            out.append(
                Finding(
                    Severity.ERROR,
                    "theme-logo-invalid",
                    f"[theme] logo {value!r} is neither an https:// URL nor a file under "
                    f"{IMAGES_FOLDER}/ (such as logo.png)",
                    file,
                    line,
                )
            )
        elif not image_exists(local):
            out.append(
                Finding(
                    Severity.ERROR,
                    "theme-logo-missing",
                    f"[theme] logo {IMAGES_FOLDER}/{local} does not exist; the email would "
                    f"show a broken image from {base_url.rstrip('/')}{URL_PATH}/{quote(local)}",
                    file,
                    line,
                )
            )
    for key in ("footer_text", "logo_alt"):
        value = getattr(theme, key) or ""
        if OPEN in value or CLOSE in value:
            file, line, _ = source.where(f"theme.{key}")
            out.append(
                Finding(
                    Severity.ERROR,
                    "theme-reserved-character",
                    f"[theme] {key} holds a reserved placeholder character (⟦ or ⟧); remove it",
                    file,
                    line,
                )
            )
    return out
