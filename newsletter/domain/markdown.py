"""Markdown to email HTML and to plain text, both from the same parsed tokens.

The text version is written from the content model (headings, paragraphs, lists, links as
`text (url)`), not scraped from the HTML.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.domain.links import Utm, tag_url

TEXT_WIDTH = 72

_md = MarkdownIt("commonmark", {"html": False, "typographer": True}).enable(
    ["replacements", "smartquotes"]
)


@dataclass(frozen=True)
class RenderedMarkdown:
    html: str
    text: str


def render_markdown(
    source: str, utm: Utm | None = None, width: int = TEXT_WIDTH
) -> RenderedMarkdown:
    tokens = _md.parse(source)
    for token in _walk(tokens):
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            token.meta["written"] = href  # what the editor wrote, before UTM tagging
            token.attrSet("href", tag_url(href, utm))
    html = _md.renderer.render(tokens, _md.options, {})
    return RenderedMarkdown(html=html.strip(), text=_to_text(tokens, width))


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


def _walk(tokens: list[Token]):
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _inline_text(token: Token) -> str:
    out: list[str] = []
    href_stack: list[tuple[str, str]] = []  # (href, href as written)
    start_stack: list[int] = []
    for child in token.children or []:
        kind = child.type
        if kind in ("text", "code_inline", "html_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "link_open":
            href = str(child.attrGet("href") or "")
            href_stack.append((href, str(child.meta.get("written", href))))
            start_stack.append(len(out))
        elif kind == "link_close":
            href, written = href_stack.pop()
            label = "".join(out[start_stack.pop() :]).strip()
            shown = href.removeprefix("mailto:")
            if label not in (href, shown, written, written.removeprefix("mailto:")):
                out.append(f" ({shown})")
            elif href != written:  # an autolink that gained UTM parameters
                out[-1:] = [out[-1].replace(label, shown)] if out else []
        elif kind == "image":
            alt = child.content or "image"
            out.append(f"[{alt}] ({child.attrGet('src')})")
    return "".join(out)


def _to_text(tokens: list[Token], width: int) -> str:
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
            title = _inline_text(tokens[index + 1])
            rule = "=" if token.tag == "h1" else "-"
            blocks.append((f"{title}\n{rule * min(len(title), width)}", False))
        elif kind == "paragraph_open":
            text = _inline_text(tokens[index + 1])
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
