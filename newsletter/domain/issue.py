"""An issue file (subject, preheader, its snippets in sections, intro) and its composition."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from newsletter.domain.composition import (
    ComposedSection,
    Layout,
    SectionSpec,
    SnippetEntry,
    plan_layout,
    resolve,
)
from newsletter.domain.frontmatter import FrontMatter, parse_document
from newsletter.domain.images import LocalImage
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
# `archive/images/` holds the published images: no issue page may take that name.
RESERVED_SLUGS = frozenset({"images"})


class IssueFrontMatter(BaseModel):
    """The allowed front matter of an issue file: `snippets` or `sections`, one of them."""

    model_config = ConfigDict(extra="forbid")

    subject: OneLine
    preheader: OneLine | None = None
    date: date
    snippets: list[SnippetEntry] | None = Field(default=None, min_length=1)
    sections: list[SectionSpec] | None = Field(default=None, min_length=1)
    status: IssueStatus = "draft"


@dataclass(frozen=True)
class IssueMeta:
    """What an issue file says, its snippets laid out in sections (`domain/composition`)."""

    subject: str
    preheader: str | None
    date: date
    status: IssueStatus
    layout: Layout

    @property
    def snippets(self) -> list[str]:
        """Every snippet id in reading order, as listed (flat or across the sections)."""
        return self.layout.ids


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
    """A composed issue: the file plus its snippets, in order, each once, in sections."""

    source: IssueFile
    snippets: tuple[Snippet, ...]
    duplicates: tuple[tuple[str, int], ...]  # (snippet id, line of the repeat)
    sections: tuple[ComposedSection, ...] = ()
    images: Mapping[str, LocalImage] = field(default_factory=dict)  # file name -> what was read

    @property
    def slug(self) -> str:
        return self.source.slug

    @property
    def meta(self) -> IssueMeta:
        return self.source.meta


def parse_issue(slug: str, text: str, file: str) -> IssueFile:
    if slug in RESERVED_SLUGS:
        raise InputError(
            f"the issue name '{slug}' is reserved (the archive publishes images under it)", file
        )
    front, written = parse_document(IssueFrontMatter, "issue", slug, text, file)
    meta = IssueMeta(
        subject=written.subject,
        preheader=written.preheader,
        date=written.date,
        status=written.status,
        layout=plan_layout(front, written.snippets, written.sections),
    )
    return IssueFile(
        slug=slug, file=file, meta=meta, intro=front.body, front=front, source_text=text
    )


def compose(
    issue: IssueFile,
    library: Mapping[str, Snippet],
    known_ids: Iterable[str] = (),
    images: Mapping[str, LocalImage] | None = None,
) -> Issue:
    """Resolve snippet ids; an unknown id is an input error naming the closest known ids.

    `known_ids` lists every id in the library when only the used snippets were loaded;
    `images` holds what the service read of the local images the snippets show.
    """
    resolved = resolve(issue.meta.layout, library, known_ids, issue.file)
    return Issue(
        source=issue,
        snippets=resolved.snippets,
        duplicates=resolved.duplicates,
        sections=resolved.sections,
        images=dict(images or {}),
    )
