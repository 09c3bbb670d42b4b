"""Drafting an issue from the library (`issues new --from-library`): which snippets to
take, and why each was taken or left, and how they group into sections. Pure: the service
gives it the snippets and when each was last sent.

Taken: snippets never sent, reviewed within the review age limit as of the issue date,
with one of the wanted tags (when tags are given), most recently reviewed first, up to the
count. Each is grouped under its first tag (the first of the wanted ones, when tags are
given); sections come in the order of the wanted tags, else in the order of their first
snippet; untagged snippets go last, under "More".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

UNTAGGED_TITLE = "More"


class SkipReason(StrEnum):
    TAG = "tag"  # none of the wanted tags
    SENT = "sent"  # a send already carried it
    STALE = "stale"  # its review is older than the limit on the issue date
    COUNT = "count"  # eligible, but the count was reached with fresher reviews


@dataclass(frozen=True)
class LastSent:
    send_id: int
    issue_slug: str
    on: date


@dataclass(frozen=True)
class Candidate:
    id: str
    title: str
    tags: tuple[str, ...]
    reviewed: date
    last_sent: LastSent | None


@dataclass(frozen=True)
class Picked:
    id: str
    title: str
    reviewed: date
    tag: str | None  # the section it goes in
    reason: str


@dataclass(frozen=True)
class Skipped:
    id: str
    title: str
    kind: SkipReason
    reason: str


@dataclass(frozen=True)
class Choice:
    picked: tuple[Picked, ...]
    skipped: tuple[Skipped, ...]

    def skipped_for(self, kind: SkipReason) -> list[Skipped]:
        return [s for s in self.skipped if s.kind == kind]


@dataclass(frozen=True)
class DraftSection:
    tag: str | None
    title: str
    snippet_ids: tuple[str, ...]


def choose(
    candidates: Sequence[Candidate],
    *,
    day: date,
    max_age_days: int,
    count: int,
    tags: Sequence[str] = (),
) -> Choice:
    """Pick up to `count` snippets for an issue dated `day`; every candidate ends up either
    picked or skipped, with the reason."""
    wanted = list(dict.fromkeys(tags))
    skipped: list[Skipped] = []
    eligible: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: c.id):
        age = (day - c.reviewed).days
        if wanted and not set(c.tags) & set(wanted):
            had = ", ".join(c.tags) or "no tags"
            reason = f"tag filtered: not tagged {_either(wanted)} ({had})"
            skipped.append(Skipped(c.id, c.title, SkipReason.TAG, reason))
        elif c.last_sent is not None:
            last = c.last_sent
            reason = f"already sent: send #{last.send_id} ({last.issue_slug}) on {last.on}"
            skipped.append(Skipped(c.id, c.title, SkipReason.SENT, reason))
        elif age > max_age_days:
            reason = f"stale: reviewed {c.reviewed}, {age} days before {day} (limit {max_age_days})"
            skipped.append(Skipped(c.id, c.title, SkipReason.STALE, reason))
        else:
            eligible.append(c)
    eligible.sort(key=lambda c: (-c.reviewed.toordinal(), c.id))  # freshest review first
    picked = [
        Picked(
            c.id, c.title, c.reviewed, _section_tag(c, wanted), f"never sent; reviewed {c.reviewed}"
        )
        for c in eligible[:count]
    ]
    for c in eligible[count:]:
        reason = f"not picked: --count {count} filled by fresher reviews (reviewed {c.reviewed})"
        skipped.append(Skipped(c.id, c.title, SkipReason.COUNT, reason))
    order = list(SkipReason)
    skipped.sort(key=lambda s: (order.index(s.kind), s.id))
    return Choice(tuple(picked), tuple(skipped))


def group(
    picked: Sequence[Picked], label: Callable[[str], str], tags: Sequence[str] = ()
) -> list[DraftSection]:
    """Sections by tag: in the order of the wanted tags, else of their first snippet; the
    untagged last. `label` turns a tag into the title readers see."""
    by_tag: dict[str | None, list[str]] = {}
    for p in picked:
        by_tag.setdefault(p.tag, []).append(p.id)
    wanted = [t for t in dict.fromkeys(tags) if t in by_tag]
    rest = [t for t in by_tag if t is not None and t not in wanted]
    order: list[str | None] = [*wanted, *rest]
    if None in by_tag:
        order.append(None)
    return [
        DraftSection(tag, label(tag) if tag else UNTAGGED_TITLE, tuple(by_tag[tag]))
        for tag in order
    ]


def _section_tag(c: Candidate, wanted: Sequence[str]) -> str | None:
    if wanted:
        return next((t for t in c.tags if t in wanted), None)
    return c.tags[0] if c.tags else None


def _either(tags: Sequence[str]) -> str:
    return tags[0] if len(tags) == 1 else ", ".join(tags[:-1]) + f" or {tags[-1]}"
