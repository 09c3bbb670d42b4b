"""CSS inlining after mjml: `<mj-style inline="inline">` honoured as MJML 4 does.

Clients that drop `<head>` styles (Gmail with non-Google accounts, many webmails, some
Outlook versions) keep only `style` attributes. MJML 4 inlines the CSS of inline mj-styles
with juice and leaves every other style block in the head; mjml-python ignores the
attribute, so the blocks are taken out of the MJML before rendering and their CSS is applied
to the HTML here with css-inline. Head styles (media queries, dark mode, mjml's resets) are
not touched. Placeholders pass through unchanged: they are plain characters to the parser.
"""

from __future__ import annotations

import re

import css_inline

_STYLE = re.compile(r"[ \t]*<mj-style\b([^>]*)>(.*?)</mj-style\s*>", re.S | re.I)
_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.S)
_INLINE = re.compile(r"""\binline\s*=\s*(["'])inline\1""", re.I)


def take_inline_styles(source: str) -> tuple[str, str]:
    """The MJML without its `<mj-style inline="inline">` blocks, and their CSS.

    At-rules in such a block (`@media`, `@font-face`) cannot be inlined: they stay in the
    head as a plain mj-style instead of being lost. Newlines of a removed block are kept so
    that lines of the rest stay where they were.
    """
    found: list[str] = []

    def take(match: re.Match[str]) -> str:
        if not _INLINE.search(match.group(1)):
            return match.group(0)
        rules, at_rules = split_at_rules(match.group(2))
        found.append(rules.strip())
        kept = f"<mj-style>{at_rules}</mj-style>" if at_rules.strip() else ""
        return kept + "\n" * (match.group(0).count("\n") - kept.count("\n"))

    return _STYLE.sub(take, source), "\n".join(found)


def split_at_rules(css: str) -> tuple[str, str]:
    """(plain rules, top-level at-rules) of a style sheet, each in its original order."""
    css = _COMMENT.sub("", css)  # comments may hold braces
    plain: list[str] = []
    at_rules: list[str] = []
    depth, start, in_at = 0, 0, False
    for index, char in enumerate(css):
        if depth == 0 and char == "@" and not css[start:index].strip():
            in_at = True
        elif char == ";" and depth == 0 and in_at:  # @import ...; @charset ...;
            at_rules.append(css[start : index + 1])
            start, in_at = index + 1, False
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
            if depth == 0:
                (at_rules if in_at else plain).append(css[start : index + 1])
                start, in_at = index + 1, False
    (at_rules if in_at else plain).append(css[start:])
    return "".join(plain), "".join(at_rules)


def inline_css(html: str, css: str) -> str:
    """`css` applied to the matching elements' `style` attributes; style tags left alone.

    An element's own `style` wins over the inlined rules, as with juice.
    """
    if not css.strip():
        return html
    inliner = css_inline.CSSInliner(
        inline_style_tags=False,
        keep_style_tags=True,
        keep_link_tags=True,
        load_remote_stylesheets=False,
        minify_css=True,
        extra_css=css,
    )
    return inliner.inline(html)
