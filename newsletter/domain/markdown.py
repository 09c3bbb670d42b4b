"""Markdown to email HTML and to plain text, both from the same parsed tokens.

The text version is written from the content model, not scraped from the HTML: headings
underlined by level, `*emphasis*`, lists, and each URL once. With `References`, a link to
one of the issue's sources becomes "label [1]" (the HTML keeps the link and adds `[1]`
pointing at the list of sources), and in the text other web links become "label [8]"
(a bare URL becomes "[8]") with the URL in a list at the end, so that each URL is written
once and prose is not broken by long URLs.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.domain.citations import Reference, References
from newsletter.domain.links import Utm, tag_url

TEXT_WIDTH = 72
NBSP = "\u00a0"  # keeps a reference mark on the line of the word before it
# Text underlines by heading level: the subject, snippet titles, sub-headings.
UNDERLINES = {1: "=", 2: "-", 3: "~", 4: "."}

_md = MarkdownIt("commonmark", {"html": False, "typographer": True}).enable(
    ["replacements", "smartquotes"]
)
_EMPHASIS = {"em_open", "em_close", "strong_open", "strong_close"}


@dataclass(frozen=True)
class RenderedMarkdown:
    html: str
    text: str


def render_markdown(
    source: str,
    utm: Utm | None = None,
    width: int = TEXT_WIDTH,
    *,
    refs: References | None = None,
    top_heading: int = 1,
) -> RenderedMarkdown:
    """HTML and text of one Markdown document.

    `top_heading` is the level a `#` or `##` heading becomes (3 inside a snippet, whose
    title is the h2), so a body's sub-headings rank below the title; deeper ones follow.
    `refs` collects citations and link numbers across the whole issue, in reading order.
    """
    tokens = _md.parse(source)
    for token in _walk(tokens):
        if token.type in ("heading_open", "heading_close") and top_heading > 1:
            written = int(token.tag[1:])
            token.tag = f"h{min(top_heading + max(written - 2, 0), 6)}"
        elif token.type == "link_open":
            href = str(token.attrGet("href") or "")
            token.meta["written"] = href  # what the editor wrote, before UTM tagging
            token.attrSet("href", tag_url(href, utm))
            if refs is not None:
                token.meta["cite"] = refs.cite(href)
    text = _to_text(tokens, width, refs)
    for token in tokens:
        if token.children:
            token.children = _with_citation_marks(token.children)
    html = _md.renderer.render(tokens, _md.options, {})
    return RenderedMarkdown(html=html.strip(), text=text)


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap prose without breaking URLs or words; blank lines separate paragraphs."""
    wrapped = []
    for paragraph in text.split("\n\n"):
        wrapper = textwrap.TextWrapper(
            width=width,
            initial_indent=indent if first is None else first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines = [wrapper.fill(line) for line in paragraph.split("\n")] if paragraph else [""]
        wrapped.append("\n".join(lines))
        first = None
    return "\n\n".join(wrapped)


def underline(title: str, level: int, width: int = TEXT_WIDTH) -> str:
    """A heading for the text part: the title, underlined by level (= - ~ .)."""
    rule = UNDERLINES.get(level, ".")
    return f"{title}\n{rule * min(len(title), width)}"


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _citation_mark(reference: Reference) -> Token:
    mark = Token("html_inline", "", 0)
    mark.content = (
        f'&nbsp;<a href="#{reference.anchor}" class="cite" '
        f'aria-label="source {reference.number}">[{reference.number}]</a>'
    )
    return mark


def _with_citation_marks(children: list[Token]) -> list[Token]:
    """After each link to a source (and after the emphasis closing around it), its `[n]`."""
    out: list[Token] = []
    pending: Reference | None = None
    opened: list[Reference | None] = []
    for child in children:
        if pending is not None and child.type not in ("em_close", "strong_close"):
            out.append(_citation_mark(pending))
            pending = None
        out.append(child)
        if child.type == "link_open":
            opened.append(child.meta.get("cite"))
        elif child.type == "link_close" and opened:
            pending = opened.pop()
    if pending is not None:
        out.append(_citation_mark(pending))
    return out


def _inline_text(token: Token, refs: References | None) -> str:
    out: list[str] = []
    links: list[tuple[Token, int]] = []  # (link_open, where its label starts in out)
    pending = ""  # a reference mark, written after any emphasis that closes right after
    for child in token.children or []:
        kind = child.type
        if pending and kind not in ("em_close", "strong_close"):
            out.append(pending)
            pending = ""
        if kind in ("text", "code_inline", "html_inline"):
            out.append(child.content)
        elif kind in _EMPHASIS:
            out.append("*")
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "link_open":
            links.append((child, len(out)))
        elif kind == "link_close" and links:
            opener, start = links.pop()
            label = "".join(out[start:]).strip("* ")
            suffix, replace_label = _link_text(opener, label, refs)
            if replace_label is not None:
                out[start:] = [replace_label]
            pending = suffix
        elif kind == "image":
            alt = child.content or "image"
            out.append(f"[{alt}] ({child.attrGet('src')})")
    return "".join(out) + pending


def _link_text(link: Token, label: str, refs: References | None) -> tuple[str, str | None]:
    """(what follows the label, a replacement for the label or None) for one link."""
    href = str(link.attrGet("href") or "")
    written = str(link.meta.get("written", href))
    cite: Reference | None = link.meta.get("cite")
    is_url = label in (href, written) or label == href.removeprefix("mailto:")
    if cite is not None:
        mark = f"[{cite.number}]"
        return ("", mark) if is_url else (f"{NBSP}{mark}", None)
    if href.startswith("#"):
        return "", None  # a place in this email: the label is enough
    if href.lower().startswith("mailto:"):
        shown = href[len("mailto:") :]
        return (
            ("", None)
            if label in (shown, written.removeprefix("mailto:"))
            else (f" ({shown})", None)
        )
    if refs is not None and href.lower().startswith(("http://", "https://")):
        mark = f"[{refs.link(href).number}]"  # the URL is written once, in the list at the end
        return ("", mark) if is_url else (f"{NBSP}{mark}", None)
    if is_url:
        return "", href if href != written else None  # an autolink, with its UTM if any
    return f" ({href})", None


def _to_text(tokens: list[Token], width: int, refs: References | None) -> str:
    blocks: list[tuple[str, bool]] = []  # (text, tight: joins the previous with one newline)
    lists: list[list[int | bool]] = []  # [ordered, next number, tight, items so far]
    marker: str | None = None
    quote = 0
    for index, token in enumerate(tokens):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            ordered = kind == "ordered_list_open"
            start = int(token.attrGet("start") or 1) if ordered else 0
            tight = index + 2 < len(tokens) and tokens[index + 2].hidden
            lists.append([ordered, start, tight, 0])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            ordered, number, _, seen = lists[-1]
            marker = f"{number}." if ordered else "-"
            lists[-1][1] = int(number) + 1
            lists[-1][3] = int(seen) + 1
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "heading_open":
            title = _inline_text(tokens[index + 1], refs)
            blocks.append((underline(title, int(token.tag[1:]), width), False))
        elif kind == "paragraph_open":
            text = _inline_text(tokens[index + 1], refs)
            depth = len(lists)
            base = "  " * max(depth - 1, 0) + "> " * quote
            if marker is not None:
                first = base + marker + " "
                rest = base + " " * (len(marker) + 1)
                tight_item = bool(lists[-1][2]) and int(lists[-1][3]) > 1
                blocks.append((wrap(text, width, rest, first), tight_item))
                marker = None
            else:
                indent = base + ("  " * (1 if depth else 0))
                blocks.append((wrap(text, width, indent), False))
        elif kind in ("fence", "code_block"):
            code = "\n".join("    " + line for line in token.content.rstrip("\n").split("\n"))
            blocks.append((code, False))
        elif kind == "hr":
            blocks.append(("-" * 20, False))
    out = ""
    for text, tight in blocks:
        out += ("\n" if tight else "\n\n") + text if out else text
    return out
