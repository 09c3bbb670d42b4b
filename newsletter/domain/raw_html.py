"""Raw HTML in Markdown: the renderer escapes it, so readers would see `<b>` as text.

Found with a second parser that does read HTML, so each tag is reported with its line and
the Markdown way to say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

from newsletter.domain.findings import Finding, Severity
from newsletter.domain.issue import Issue

_md_html = MarkdownIt("commonmark", {"html": True})
_TAG_NAME = re.compile(r"</?\s*([A-Za-z][A-Za-z0-9-]*)")


@dataclass(frozen=True)
class RawHtml:
    line: int  # 1-based, within the Markdown source
    html: str  # as written, e.g. "<b>"
    tag: str  # lower case, "" for a comment or a declaration


def find_raw_html(source: str) -> list[RawHtml]:
    """HTML tags written in Markdown: readers would see them as text (`&lt;b&gt;`)."""
    found: list[RawHtml] = []
    for token in _md_html.parse(source):
        if token.type == "html_block" and token.map:
            found.append(_raw(token.content, token.map[0] + 1))
        elif token.type == "inline" and token.map:
            lines = source.splitlines()[token.map[0] : token.map[1]]
            consumed = 0  # where in the block's lines the search goes on
            block = "\n".join(lines)
            for child in token.children or []:
                if child.type != "html_inline":
                    continue
                position = block.find(child.content, consumed)
                consumed = max(position, 0) + len(child.content)
                line = token.map[0] + 1 + block.count("\n", 0, max(position, 0))
                found.append(_raw(child.content, line))
    return found


def _raw(html: str, line: int) -> RawHtml:
    first = html.strip().splitlines()[0] if html.strip() else html
    match = _TAG_NAME.match(first)
    return RawHtml(line=line, html=first[:40], tag=match.group(1).lower() if match else "")


# What to write instead of an HTML tag, in Markdown.
_MARKDOWN_WAY = {
    "b": "**bold**",
    "strong": "**bold**",
    "i": "*italic*",
    "em": "*italic*",
    "a": "[link text](https://example.org/page)",
    "br": "a blank line between paragraphs",
    "p": "a blank line between paragraphs",
    "ul": "one line per item starting with '- '",
    "ol": "one line per item starting with '1. '",
    "li": "one line per item starting with '- '",
    "blockquote": "lines starting with '> '",
    "code": "`code`",
    "pre": "an indented block or ``` fences",
    "hr": "a line of three dashes: ---",
    "img": "the snippet's image: and alt: fields",
    "": "nothing: delete it (an HTML comment is shown to readers too)",
    **{f"h{n}": "a line starting with '## ' for a sub-heading" for n in range(1, 7)},
}


def check_raw_html(issue: Issue) -> list[Finding]:
    """HTML written in Markdown is shown to readers as text (`&lt;b&gt;`): say how instead."""
    documents = [
        (issue.source.file, "the introduction", issue.source.intro, issue.source.front.body_line)
    ]
    documents += [(s.file, f"snippet '{s.id}'", s.body, s.body_line) for s in issue.snippets]
    out: list[Finding] = []
    for file, what, body, first_line in documents:
        raws = find_raw_html(body)
        opened = {raw.tag for raw in raws if not raw.html.startswith("</")}
        seen: set[str] = set()
        for raw in raws:
            if raw.tag in seen or (raw.html.startswith("</") and raw.tag in opened):
                continue
            seen.add(raw.tag)
            way = _MARKDOWN_WAY.get(raw.tag, "plain Markdown (HTML is not allowed)")
            out.append(
                Finding(
                    Severity.ERROR,
                    "raw-html",
                    f"HTML {raw.html!r} in {what} would reach readers as literal text; "
                    f"write it in Markdown instead: {way}",
                    file,
                    first_line + raw.line - 1,
                )
            )
    return out
