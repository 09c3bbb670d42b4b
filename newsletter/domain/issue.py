"""An issue file (subject, preheader, ordered snippet ids, intro) and its composition."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from newsletter.domain.frontmatter import FrontMatter, parse_document
from newsletter.domain.snippet import Snippet
from newsletter.errors import InputError


def _one_line(value: str | None) -> str | None:
    """Subjects and preheaders end up in headers: no line breaks or control characters."""
    if value is not None and any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must be one line without control characters")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]

# `published`: sendable like `ready`, and on the public archive whether or not it was sent.
IssueStatus = Literal["draft", "ready", "published"]
SENDABLE: frozenset[str] = frozenset({"ready", "published"})


class IssueMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: OneLine
    preheader: OneLine | None = None
    date: date
    snippets: list[str] = Field(min_length=1)
    status: IssueStatus = "draft"


@dataclass(frozen=True)
class IssueFile:
    slug: str
    file: str
    meta: IssueMeta
    intro: str
    front: FrontMatter
    source_text: str


@dataclass(frozen=True)
class Issue:
    """A composed issue: the file plus its snippets, in order, each once."""

    source: IssueFile
    snippets: tuple[Snippet, ...]
    duplicates: tuple[tuple[str, int], ...]  # (snippet id, line of the repeat)

    @property
    def slug(self) -> str:
        return self.source.slug

    @property
    def meta(self) -> IssueMeta:
        return self.source.meta


def parse_issue(slug: str, text: str, file: str) -> IssueFile:
    front, meta = parse_document(IssueMeta, "issue", slug, text, file)
    return IssueFile(
        slug=slug, file=file, meta=meta, intro=front.body, front=front, source_text=text
    )


def compose(
    issue: IssueFile, library: Mapping[str, Snippet], known_ids: Iterable[str] = ()
) -> Issue:
    """Resolve snippet ids; an unknown id is an input error naming the closest known ids.

    `known_ids` lists every id in the library when only the used snippets were loaded.
    """
    chosen: list[Snippet] = []
    seen: set[str] = set()
    duplicates: list[tuple[str, int]] = []
    for index, snippet_id in enumerate(issue.meta.snippets):
        line = issue.front.line_of("snippets", index)
        if snippet_id not in library:
            candidates = sorted({*library, *known_ids})
            close = difflib.get_close_matches(snippet_id, candidates, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InputError(f"unknown snippet '{snippet_id}'{hint}", issue.file, line)
        if snippet_id in seen:
            duplicates.append((snippet_id, line))
            continue
        seen.add(snippet_id)
        chosen.append(library[snippet_id])
    return Issue(source=issue, snippets=tuple(chosen), duplicates=tuple(duplicates))
