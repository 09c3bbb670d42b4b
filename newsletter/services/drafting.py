"""`issues new SLUG --from-library`: a draft issue of snippets never sent, freshest review
first, grouped into sections by tag, with `TK` where the editor still has to write. The
answer says what was picked and what was left, and why, for the command to print.

The file is written as `issues new` writes one (services/scaffold.py): parsed before it is
written, created exclusively, never over an existing file.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine

from newsletter.domain.drafting import (
    Candidate,
    Choice,
    DraftSection,
    LastSent,
    SkipReason,
    choose,
    group,
)
from newsletter.domain.issue import parse_issue
from newsletter.domain.scaffold import TK, issue_text_with_sections
from newsletter.errors import InputError
from newsletter.infra.files import display_path
from newsletter.infra.workspace import Workspace
from newsletter.services.library import Library
from newsletter.services.reuse import snippet_usage
from newsletter.services.scaffold import Created, check_name, create_new

DEFAULT_COUNT = 5


@dataclass(frozen=True)
class Drafted:
    created: Created
    day: date
    choice: Choice
    sections: list[DraftSection]

    def to_dict(self) -> dict[str, Any]:
        section_of = {sid: s.title for s in self.sections for sid in s.snippet_ids}
        return {
            "path": self.created.shown,
            "date": self.day.isoformat(),
            "sections": [
                {"title": s.title, "tag": s.tag, "snippets": list(s.snippet_ids)}
                for s in self.sections
            ],
            "picked": [
                {
                    "id": p.id,
                    "title": p.title,
                    "section": section_of[p.id],
                    "reviewed": p.reviewed.isoformat(),
                    "reason": p.reason,
                }
                for p in self.choice.picked
            ],
            "skipped": [
                {"id": s.id, "title": s.title, "kind": str(s.kind), "reason": s.reason}
                for s in self.choice.skipped
            ],
        }


def split_tags(values: Sequence[str]) -> list[str]:
    """`--tags evidence,safety` (or repeated): each tag once, in the order given."""
    return list(dict.fromkeys(t.strip() for v in values for t in v.split(",") if t.strip()))


def draft_from_library(
    workspace: Workspace,
    engine: Engine,
    slug: str,
    *,
    day: date,
    tags: Sequence[str] = (),
    count: int = DEFAULT_COUNT,
    subject: str | None = None,
) -> Drafted:
    """Choose, group, write `issues/SLUG.md` (status draft). Input errors: a bad name, an
    existing file, a count below 1, a tag no snippet has, nothing left to pick."""
    check_name("issue", slug)
    if count < 1:
        raise InputError(f"--count must be 1 or more (got {count})")
    library = Library(workspace)
    path = workspace.issues_dir / f"{slug}.md"
    if path.exists():
        raise InputError("already exists; not overwritten", display_path(path))
    snippets = library.snippets()
    wanted = split_tags(tags)
    _check_tags(wanted, {t for s in snippets for t in s.meta.tags})
    usage = snippet_usage(workspace, engine)
    candidates = []
    for s in snippets:
        last = usage[s.id].last if s.id in usage else None
        sent = None if last is None else LastSent(last.send_id, last.issue_slug, last.at.date())
        candidates.append(Candidate(s.id, s.meta.title, tuple(s.meta.tags), s.meta.reviewed, sent))
    max_age = workspace.settings.checks.review_max_age_days
    choice = choose(candidates, day=day, max_age_days=max_age, count=count, tags=wanted)
    if not choice.picked:
        raise InputError(_nothing_to_pick(choice, len(snippets), wanted, day, max_age))
    sections = group(choice.picked, workspace.settings.topic_label, wanted)
    text = issue_text_with_sections(
        subject or f"{TK}: the subject line",
        [(s.title, s.snippet_ids) for s in sections],
        day,
    )
    parse_issue(slug, text, display_path(path))
    return Drafted(create_new(path, text), day, choice, sections)


def _check_tags(wanted: Sequence[str], known: set[str]) -> None:
    for tag in wanted:
        if tag not in known:
            close = difflib.get_close_matches(tag, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            listed = f" (snippet tags: {', '.join(sorted(known))})" if not close else ""
            raise InputError(f"--tags: no snippet is tagged '{tag}'{hint}{listed}")


def _nothing_to_pick(
    choice: Choice, total: int, wanted: Sequence[str], day: date, max_age: int
) -> str:
    left = [
        (len(choice.skipped_for(SkipReason.SENT)), "already sent"),
        (
            len(choice.skipped_for(SkipReason.STALE)),
            f"reviewed more than {max_age} days before {day}",
        ),
        (len(choice.skipped_for(SkipReason.TAG)), "without the wanted tags"),
    ]
    why = ", ".join(f"{n} {what}" for n, what in left if n)
    tagged = f" tagged {' or '.join(wanted)}" if wanted else ""
    return (
        f"nothing to draft from: none of the {total} snippet(s) is never sent, reviewed "
        f"within {max_age} days of {day}{tagged}" + (f" ({why})" if why else "") + "; write "
        "a new one (newsletter snippets new ID), review a stale one (its `reviewed:` date), "
        "or widen --tags"
    )
