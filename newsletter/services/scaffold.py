"""`snippets new`, `issues new`, `snippets show`: content files made and read for editors.

A new file is parsed before it is written (the template can never produce a file the
library rejects) and created exclusively: an existing file is never overwritten."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from newsletter.domain.frontmatter import NAME_PATTERN
from newsletter.domain.issue import parse_issue
from newsletter.domain.markdown import render_markdown
from newsletter.domain.scaffold import TK, issue_text, snippet_text
from newsletter.domain.snippet import Snippet, parse_snippet
from newsletter.errors import InputError
from newsletter.infra.files import display_path
from newsletter.services.library import Library


@dataclass(frozen=True)
class Created:
    path: Path
    shown: str


@dataclass(frozen=True)
class SnippetView:
    snippet: Snippet
    text: str  # the body as a reader of the plain-text email sees it
    used_by: list[str]  # issue slugs


def new_snippet(library: Library, snippet_id: str, title: str | None, today: date) -> Created:
    check_name("snippet", snippet_id)
    folder = library.workspace.snippets_dir
    path = folder / f"{snippet_id}.md"
    text = snippet_text(title or f"{TK}: {snippet_id.replace('-', ' ')}", today)
    parse_snippet(snippet_id, text, display_path(path))
    return create_new(path, text)


def new_issue(
    library: Library, slug: str, snippet_ids: Sequence[str], day: date, subject: str | None
) -> Created:
    check_name("issue", slug)
    known = library.snippet_paths()
    for sid in snippet_ids:
        if sid not in known:
            raise InputError(f"--snippet {sid}: no such snippet (see: newsletter snippets list)")
    path = library.workspace.issues_dir / f"{slug}.md"
    text = issue_text(subject or f"{TK}: the subject line", snippet_ids, day)
    parse_issue(slug, text, display_path(path))
    return create_new(path, text)


def show_snippet(library: Library, snippet_id: str) -> SnippetView:
    paths = library.snippet_paths()
    if snippet_id not in paths:
        raise InputError(f"no snippet '{snippet_id}' (see: newsletter snippets list)")
    snippet = library.load_snippet(paths[snippet_id])
    used_by = [i.slug for i in library.issues() if snippet_id in i.meta.snippets]
    return SnippetView(snippet, render_markdown(snippet.body, None).text, used_by)


def check_name(kind: str, name: str) -> None:
    """A content file name (it becomes the file name): also used by drafting."""
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"{kind} name '{name}' must be lowercase letters, digits and dashes "
            "(it becomes the file name)"
        )


def create_new(path: Path, text: str) -> Created:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InputError("already exists; not overwritten", display_path(path)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Created(path, display_path(path))
