"""New content files from a template: valid front matter, today's date, `TK` where the
editor still has to write (the checks refuse to send an issue that still has one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

TK = "TK"  # the editor's mark for text still to come


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def snippet_text(title: str, today: date) -> str:
    return f"""---
title: {_quoted(title)}
summary: "{TK}: one sentence a reader sees in lists and teasers."
tags: []
sources: []
# sources:
#   - title: "Author A, et al. Title of the paper. Journal 2024;1(2):3-4"
#     url: https://doi.org/10.xxxx/xxxxx
reviewed: {today.isoformat()}
---
{TK}: write the snippet here, in Markdown. Every claim needs one of the sources above;
cite it inline as [Author et al., year](https://doi.org/...).
"""


def issue_text(subject: str, snippet_ids: Sequence[str], day: date) -> str:
    listed = "\n".join(f"  - {sid}" for sid in snippet_ids) or f"  - {TK}"
    return _issue(subject, day, f"snippets:\n{listed}")


def issue_text_with_sections(
    subject: str, sections: Sequence[tuple[str, Sequence[str]]], day: date
) -> str:
    """An issue whose snippets are grouped under titled sections, in the given order."""
    blocks = []
    for title, snippet_ids in sections:
        listed = "\n".join(f"      - {sid}" for sid in snippet_ids)
        blocks.append(f"  - title: {_quoted(title)}\n    snippets:\n{listed}")
    return _issue(subject, day, "sections:\n" + "\n".join(blocks))


def _issue(subject: str, day: date, snippets: str) -> str:
    return f"""---
subject: {_quoted(subject)}
preheader: "{TK}: the line inboxes show after the subject."
date: {day.isoformat()}
status: draft
{snippets}
---
{TK}: the introduction, a short paragraph or two in Markdown.
"""
