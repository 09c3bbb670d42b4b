"""Composition: how an issue arranges its snippets, and the places readers can jump to.

An issue lists its snippets either flat (`snippets:`, one untitled section) or grouped
under headings (`sections:`, each with a `title` and its own `snippets`), never both. An
entry is a snippet id, or a mapping with options for this issue only:

    - id: how-microneedling-works
      teaser: true     # title, summary and "Read more" in the email; in full on the archive
      repeat: true     # it may go out again (read by the reuse check)

Every snippet gets an anchor named after its id (`#how-microneedling-works`), every
titled section one numbered `#section-1`; with three sections or more the issue opens
with a table of contents.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from newsletter.domain.frontmatter import FrontMatter
from newsletter.domain.snippet import Snippet
from newsletter.errors import InputError

TOC_MIN_SECTIONS = 3  # fewer sections need no table of contents
# Anchors the email numbers itself; a snippet id must not take one of them.
_NUMBERED_ANCHOR = re.compile(r"(?:section|source)-\d+")


def _one_line(value: str) -> str:
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must be one line without control characters")
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


class SnippetEntry(BaseModel):
    """One entry of a `snippets:` list: an id, or a mapping with per-issue options."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    teaser: StrictBool = False
    repeat: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _plain_id(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value


class SectionSpec(BaseModel):
    """One item of `sections:` as written."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, AfterValidator(_one_line), Field(max_length=120)]
    snippets: list[SnippetEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Entry:
    """A snippet's place in the issue file, with its options."""

    id: str
    teaser: bool
    repeat: bool
    line: int  # of the entry in the issue file


@dataclass(frozen=True)
class Section:
    number: int  # 1-based
    title: str | None  # None: the one untitled section of a flat `snippets:` list
    entries: tuple[Entry, ...]
    line: int

    @property
    def anchor(self) -> str | None:
        return section_anchor(self.number) if self.title is not None else None


@dataclass(frozen=True)
class Layout:
    """The sections of an issue file, in order, as written (before snippets are looked up)."""

    sections: tuple[Section, ...]

    @property
    def entries(self) -> list[Entry]:
        return [entry for section in self.sections for entry in section.entries]

    @property
    def ids(self) -> list[str]:
        """Every snippet id in reading order, repeats included, as listed."""
        return [entry.id for entry in self.entries]

    @property
    def titled(self) -> bool:
        return any(section.title is not None for section in self.sections)

    @property
    def has_toc(self) -> bool:
        return self.titled and len(self.sections) >= TOC_MIN_SECTIONS


def section_anchor(number: int) -> str:
    return f"section-{number}"


def plan_layout(
    front: FrontMatter,
    snippets: list[SnippetEntry] | None,
    sections: list[SectionSpec] | None,
) -> Layout:
    """The layout of a validated issue front matter; `snippets` and `sections` both given,
    or neither, is an input error naming the line."""
    if snippets is not None and sections is not None:
        later = max(("snippets", "sections"), key=lambda key: front.line_of(key))
        raise InputError(
            "give either `snippets:` (one list) or `sections:` (titled groups, each with "
            "its own `snippets:`), not both",
            front.file,
            front.line_of(later),
        )
    if sections is not None:
        return Layout(
            tuple(
                Section(
                    number=index + 1,
                    title=spec.title,
                    entries=_entries(front, spec.snippets, ("sections", index, "snippets")),
                    line=front.line_of("sections", index),
                )
                for index, spec in enumerate(sections)
            )
        )
    if snippets is not None:
        entries = _entries(front, snippets, ("snippets",))
        return Layout((Section(1, None, entries, front.line_of("snippets")),))
    raise InputError(
        "no snippets: list them under `snippets:`, or group them under `sections:` "
        "(each with a `title:` and its own `snippets:`)",
        front.file,
        max(front.body_line - 1, 1),  # the closing '---': add them above it
    )


def _entries(
    front: FrontMatter, specs: list[SnippetEntry], path: tuple[str | int, ...]
) -> tuple[Entry, ...]:
    return tuple(
        Entry(spec.id, spec.teaser, spec.repeat, front.line_of(*path, index))
        for index, spec in enumerate(specs)
    )


# -- with the snippets looked up ------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """A snippet in its place: the entry says whether it is a teaser."""

    snippet: Snippet
    entry: Entry

    @property
    def anchor(self) -> str:
        return self.snippet.id


@dataclass(frozen=True)
class ComposedSection:
    section: Section
    items: tuple[Placed, ...]

    @property
    def title(self) -> str | None:
        return self.section.title

    @property
    def anchor(self) -> str | None:
        return self.section.anchor


@dataclass(frozen=True)
class Resolved:
    sections: tuple[ComposedSection, ...]
    snippets: tuple[Snippet, ...]  # each once, in reading order
    duplicates: tuple[tuple[str, int], ...]  # (snippet id, line of the repeat)


def resolve(
    layout: Layout, library: Mapping[str, Snippet], known_ids: Iterable[str], file: str
) -> Resolved:
    """Look the entries up; an unknown id is an input error naming the closest known ids.
    A snippet listed twice keeps its first place; the repeat is reported by the checks."""
    seen: set[str] = set()
    duplicates: list[tuple[str, int]] = []
    chosen: list[Snippet] = []
    sections: list[ComposedSection] = []
    for section in layout.sections:
        items: list[Placed] = []
        for entry in section.entries:
            if entry.id not in library:
                candidates = sorted({*library, *known_ids})
                close = difflib.get_close_matches(entry.id, candidates, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise InputError(f"unknown snippet '{entry.id}'{hint}", file, entry.line)
            if _NUMBERED_ANCHOR.fullmatch(entry.id):
                raise InputError(
                    f"snippet id '{entry.id}' is the name of a place the email numbers "
                    "itself (sources and sections); rename the snippet file",
                    file,
                    entry.line,
                )
            if entry.id in seen:
                duplicates.append((entry.id, entry.line))
                continue
            seen.add(entry.id)
            chosen.append(library[entry.id])
            items.append(Placed(library[entry.id], entry))
        sections.append(ComposedSection(section, tuple(items)))
    return Resolved(tuple(sections), tuple(chosen), tuple(duplicates))
