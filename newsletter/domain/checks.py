"""Pre-flight checks over a composed and rendered issue. Errors stop a send; warnings inform.

`Finding` and `Severity` live in `findings` and are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser

from newsletter.domain.findings import Finding, Severity, ordered
from newsletter.domain.image_checks import image_src_allowed
from newsletter.domain.issue import Issue
from newsletter.domain.links import is_allowed_link, is_local_http
from newsletter.domain.personalize import (
    CLOSE,
    OPEN,
    PersonalizedMessage,
    RenderedIssue,
    placeholder,
)
from newsletter.domain.raw_html import check_raw_html
from newsletter.domain.source_checks import check_reserved_links, check_sources
from newsletter.domain.topic_checks import check_topics

__all__ = ["CheckLimits", "Finding", "Severity", "has_errors", "run_checks"]


@dataclass(frozen=True)
class CheckLimits:
    html_max_bytes: int = 102 * 1024
    html_warn_bytes: int = 80 * 1024
    subject_max_chars: int = 78
    review_max_age_days: int = 365


# Markers an editor leaves while writing; none may reach a reader.
_LEFTOVERS = re.compile(r"\b(?:TK|TODO|FIXME)\b|(?i:\blorem ipsum\b)|\{\{|\}\}|\{%|%\}")


class _Tags(HTMLParser):
    """Collects links, images and the text a reader sees from the final HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()  # targets of in-email links (#source-1)
        self.images: list[dict[str, str | None]] = []
        self.visible: list[str] = []  # text nodes, alt and title attributes
        self._skip = 0  # inside <style> or <script>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("style", "script"):
            self._skip += 1
        for key in ("id", "name" if tag == "a" else "id"):
            if found.get(key):
                self.ids.add(str(found[key]))
        if tag == "a" and found.get("href") is not None:
            self.links.append(str(found["href"]))
        elif tag == "img":
            self.images.append(found)
        self.visible.extend(str(found[k]) for k in ("alt", "title") if found.get(k))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.visible.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.visible).split())


def _parse(html_source: str) -> _Tags:
    parser = _Tags()
    parser.feed(html_source)
    parser.close()
    return parser


def run_checks(
    issue: Issue,
    rendered: RenderedIssue,
    probe: PersonalizedMessage,
    *,
    postal_address: str,
    today: date,
    limits: CheckLimits,
    template_files: Iterable[tuple[str, str]] = (),
    base_url: str = "",
    topics: Collection[str] = (),
    theme: Iterable[Finding] = (),
) -> list[Finding]:
    """All findings, errors first; `probe` is the issue personalized for a sample recipient.
    Links under `base_url` are our own pages: plain http there when it is this machine's.
    `theme`: the [theme]'s own findings (`domain.theme_checks.check_theme`), reported with these."""
    content = [
        (issue.source.file, issue.source.source_text),
        *((s.file, s.source_text) for s in issue.snippets),
    ]
    templates = list(template_files)
    parsed = _parse(probe.html)
    findings = [
        *_check_meta(issue, limits),
        *_check_snippets(issue, today, limits),
        *check_raw_html(issue),
        *check_sources(issue),
        *check_topics(issue, topics),
        *_check_size(probe, limits),
        *_check_footer(rendered, probe, parsed, postal_address, templates),
        *_check_html(parsed, [*content, *templates], base_url),
        *_check_leftovers(issue, probe, parsed, content, templates),
        *theme,
    ]
    # A source's problem is found in its front matter and again as a link: say it once.
    return ordered(findings)


def web_links(html: str) -> list[str]:
    """Every http(s) link and image of an email, each once (for `check --online`)."""
    parsed = _parse(html)
    found = [*parsed.links, *(str(image.get("src") or "") for image in parsed.images)]
    return [url for url in dict.fromkeys(found) if url.startswith(("http://", "https://"))]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == Severity.ERROR for f in findings)


def _locate(needle: str, files: list[tuple[str, str]]) -> tuple[str | None, int | None]:
    """The first file and line holding `needle`, so a finding in the output points at a source.

    A link may have gained UTM parameters since; then its part before the query is looked for.
    """
    for candidate in dict.fromkeys((needle, needle.split("?")[0])):
        for name, text in files:
            position = text.find(candidate)
            if position >= 0:
                return name, text.count("\n", 0, position) + 1
    return None, None


def _check_meta(issue: Issue, limits: CheckLimits) -> list[Finding]:
    meta, source = issue.meta, issue.source
    out: list[Finding] = []
    subject = meta.subject.strip()
    if not subject:
        out.append(
            Finding(
                Severity.ERROR,
                "subject-empty",
                "subject is empty",
                source.file,
                source.front.line_of("subject"),
            )
        )
    elif len(subject) > limits.subject_max_chars:
        out.append(
            Finding(
                Severity.WARNING,
                "subject-long",
                f"subject is {len(subject)} characters; "
                f"over {limits.subject_max_chars} it may be cut",
                source.file,
                source.front.line_of("subject"),
            )
        )
    if not (meta.preheader or "").strip():
        out.append(
            Finding(
                Severity.WARNING,
                "preheader-missing",
                "no preheader: inboxes will show the first body text instead",
                source.file,
                1,
            )
        )
    if meta.status == "draft":
        out.append(
            Finding(
                Severity.WARNING,
                "issue-draft",
                "issue is marked draft",
                source.file,
                source.front.line_of("status"),
            )
        )
    for snippet_id, line in issue.duplicates:
        out.append(
            Finding(
                Severity.ERROR,
                "snippet-duplicate",
                f"snippet '{snippet_id}' is used more than once",
                source.file,
                line,
            )
        )
    return out


def _check_snippets(issue: Issue, today: date, limits: CheckLimits) -> list[Finding]:
    out: list[Finding] = []
    for snippet in issue.snippets:
        meta = snippet.meta
        if not snippet.body.strip():
            out.append(
                Finding(
                    Severity.WARNING,
                    "snippet-empty",
                    f"snippet '{snippet.id}' has no body",
                    snippet.file,
                    snippet.body_line,
                )
            )
        if meta.reviewed > today:
            out.append(
                Finding(
                    Severity.WARNING,
                    "snippet-review-future",
                    f"snippet '{snippet.id}' says it was reviewed on "
                    f"{meta.reviewed}, which is in the future",
                    snippet.file,
                    snippet.front.line_of("reviewed"),
                )
            )
        if not meta.sources:
            out.append(
                Finding(
                    Severity.WARNING,
                    "snippet-no-sources",
                    f"snippet '{snippet.id}' cites no sources",
                    snippet.file,
                    1,
                )
            )
        age = (today - meta.reviewed).days
        if age > limits.review_max_age_days:
            out.append(
                Finding(
                    Severity.WARNING,
                    "snippet-stale",
                    f"snippet '{snippet.id}' was last reviewed {age} days ago "
                    f"(limit {limits.review_max_age_days})",
                    snippet.file,
                    snippet.front.line_of("reviewed"),
                )
            )
    return out


def _check_size(probe: PersonalizedMessage, limits: CheckLimits) -> list[Finding]:
    size = len(probe.html.encode("utf-8"))
    kb = f"{size / 1024:.1f} KB"
    if size > limits.html_max_bytes:
        return [
            Finding(
                Severity.ERROR,
                "html-too-large",
                f"HTML is {kb}; Gmail clips above {limits.html_max_bytes // 1024} KB, "
                "hiding the footer and its unsubscribe link",
            )
        ]
    if size > limits.html_warn_bytes:
        return [
            Finding(
                Severity.WARNING,
                "html-large",
                f"HTML is {kb}, close to Gmail's {limits.html_max_bytes // 1024} KB clip",
            )
        ]
    return []


def _check_footer(
    rendered: RenderedIssue,
    probe: PersonalizedMessage,
    parsed: _Tags,
    postal_address: str,
    templates: list[tuple[str, str]],
) -> list[Finding]:
    out: list[Finding] = []
    footer = _locate("unsubscribe_url", templates)
    unsubscribe = placeholder("unsubscribe_url")
    if f'href="{unsubscribe}"' not in rendered.html or unsubscribe not in rendered.text:
        out.append(
            Finding(
                Severity.ERROR,
                "unsubscribe-missing",
                "no unsubscribe link in the HTML and text body",
                *footer,
            )
        )
    if f'href="{placeholder("preferences_url")}"' not in rendered.html:
        out.append(Finding(Severity.WARNING, "preferences-missing", "no preferences link", *footer))
    address = " ".join(postal_address.split())
    text = " ".join(probe.text.split())
    if not address or address not in parsed.text or address not in text:
        out.append(
            Finding(
                Severity.ERROR,
                "postal-address-missing",
                "the postal address is missing from the footer (CAN-SPAM)",
                *_locate("postal_address", templates),
            )
        )
    return out


def as_written(href: str, files: list[tuple[str, str]]) -> tuple[str, str | None, int | None]:
    """A link as the editor wrote it (before UTM parameters were added), and where."""
    file, line = _locate(href, files)
    if file is None or line is None:
        return href, file, line
    text = dict(files)[file].splitlines()[line - 1]
    base = href.split("?")[0]
    start = text.find(base)
    if start < 0:
        return href, file, line
    match = re.match(r"[^\s)\]\"'<>]+", text[start:])
    return (match.group(0) if match else href), file, line


def _check_html(parsed: _Tags, files: list[tuple[str, str]], base_url: str) -> list[Finding]:
    out: list[Finding] = []
    own = base_url + "/" if base_url else None
    local = own if own and is_local_http(own) else None
    foreign = [h for h in dict.fromkeys(parsed.links) if not (own and h.startswith(own))]
    written = [as_written(h, files) for h in foreign]
    out.extend(check_reserved_links([w for w, _, _ in written], [(f, n) for _, f, n in written]))
    for href in dict.fromkeys(parsed.links):
        if local and href.startswith(local):
            continue
        if href.startswith("#") and len(href) > 1:
            if href[1:] not in parsed.ids:
                out.append(
                    Finding(
                        Severity.ERROR,
                        "link-target-missing",
                        f"link {href!r} points at nothing: no element has the id "
                        f"{href[1:]!r} in this email",
                        *_locate(f"]({href})", files),
                    )
                )
        elif not is_allowed_link(href):
            shown, file, line = as_written(href, files)
            out.append(
                Finding(
                    Severity.ERROR,
                    "link-not-https",
                    f"link {shown!r} is not an absolute https:// or mailto: URL",
                    file,
                    line,
                )
            )
    for image in parsed.images:
        src = str(image.get("src") or "")
        if not (image.get("alt") or "").strip():
            file, line = _locate(src, files) if src else (None, None)
            out.append(
                Finding(
                    Severity.ERROR, "image-no-alt", f"image {src!r} has no alt text", file, line
                )
            )
        if src and not image_src_allowed(src, local):
            file, line = _locate(src, files)
            out.append(
                Finding(
                    Severity.ERROR,
                    "image-not-https",
                    f"image {src!r} is not an absolute https:// URL",
                    file,
                    line,
                )
            )
    return out


def _check_leftovers(
    issue: Issue,
    probe: PersonalizedMessage,
    parsed: _Tags,
    content: list[tuple[str, str]],
    templates: list[tuple[str, str]],
) -> list[Finding]:
    out: list[Finding] = []
    for label, body in (("HTML", probe.html), ("text", probe.text)):
        if OPEN in body or CLOSE in body:
            out.append(
                Finding(
                    Severity.ERROR,
                    "placeholder-left",
                    f"an unfilled placeholder is left in the {label} output",
                    *_locate(OPEN, [*content, *templates]),
                )
            )
    # Everything a reader can see: subject, preheader, text, the HTML's text and alt texts.
    seen_by_reader = "\n".join(
        (issue.meta.subject, issue.meta.preheader or "", probe.text, parsed.text)
    )
    seen: set[str] = set()
    for match in _LEFTOVERS.finditer(seen_by_reader):
        marker = match.group(0)
        if marker.lower() in seen:
            continue
        seen.add(marker.lower())
        # Templates are full of {{ }}; only word markers are looked for there.
        where = [*content, *templates] if marker[0].isalpha() else content
        file, line = _locate_marker(marker, where)
        out.append(
            Finding(
                Severity.ERROR,
                "marker-left",
                f"editing marker {marker!r} left in the text",
                file,
                line,
            )
        )
    return out


def _locate_marker(marker: str, files: list[tuple[str, str]]) -> tuple[str | None, int | None]:
    escaped = re.escape(marker)
    pattern = re.compile(rf"\b{escaped}\b" if marker[0].isalnum() else escaped, re.I)
    for name, text in files:
        found = pattern.search(text)
        if found:
            return name, text.count("\n", 0, found.start()) + 1
    return None, None
