"""Our own click tracking: a frozen render's links rewritten to `/c/<token>/<tag>?u=<target>`.

The token is per recipient (a placeholder filled at send time: subscriber and send); the tag
signs the target, so the redirect leads only where the email pointed (never an open
redirect). Rewritten once per send, before the render is frozen; pure: no keys, no I/O
(the caller passes the function that signs a target)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import quote

from newsletter.domain.personalize import RenderedIssue, placeholder

PATH = "/c/"
_HREF = re.compile(r'href="(https?://[^"]+)"')
# A URL in running text: stops at white space and brackets; trailing punctuation stays out.
_TEXT_URL = re.compile(r"https?://[^\s<>()\"]+[^\s<>()\".,;:!?'\]]")


def tracked_url(base_url: str, target: str, tag: str) -> str:
    return f"{base_url}{PATH}{placeholder('click_token')}/{tag}?u={quote(target, safe='')}"


def track_links(rendered: RenderedIssue, base_url: str, tag: Callable[[str], str]) -> RenderedIssue:
    """Every http(s) link of the HTML and text parts, except our own subscription pages
    (their URLs are per-recipient placeholders and never match)."""

    def rewrite(target: str) -> str:
        return tracked_url(base_url, target, tag(target))

    def in_html(match: re.Match[str]) -> str:
        target = html.unescape(match.group(1))
        return f'href="{html.escape(rewrite(target), quote=True)}"'

    return RenderedIssue.create(
        slug=rendered.slug,
        subject=rendered.subject,
        preheader=rendered.preheader,
        html=_HREF.sub(in_html, rendered.html),
        text=_TEXT_URL.sub(lambda m: rewrite(m.group(0)), rendered.text),
    )
