"""A snippet's tags are the topics readers follow: a tag with no `[topics]` entry would be
offered to nobody by name (usually a typo, or a topic not yet described)."""

from __future__ import annotations

import difflib
from collections.abc import Collection

from newsletter.domain.findings import Finding, Severity
from newsletter.domain.issue import Issue


def check_topics(issue: Issue, topics: Collection[str]) -> list[Finding]:
    """Nothing when no topics are configured (tags are then offered as they are)."""
    if not topics:
        return []
    out = []
    for snippet in issue.snippets:
        for index, tag in enumerate(snippet.meta.tags):
            if tag in topics:
                continue
            close = difflib.get_close_matches(tag, list(topics), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(
                Finding(
                    Severity.WARNING,
                    "tag-not-a-topic",
                    f"tag '{tag}' is not a topic in newsletter.toml [topics]{hint} "
                    f"(add [topics.{tag}] with a label, or use one of: {', '.join(topics)})",
                    snippet.file,
                    snippet.front.line_of("tags", index),
                )
            )
    return out
