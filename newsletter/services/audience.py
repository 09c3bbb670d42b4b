"""Who a send goes to: the one definition that the dry run, the count, the prompt, the
send and the scheduler all use.

Everyone active, not erased and not pausing; with a topic, those who follow it and those
who follow no topic at all (the preferences page says "no topic ticked means everything").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, String, cast, exists, func, or_, select

from newsletter.domain.subscriber import Status
from newsletter.errors import InputError
from newsletter.infra.db.clock import now
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import subscribers
from newsletter.infra.workspace import Workspace
from newsletter.services.library import Library
from newsletter.services.subscribers import follows_topic


@dataclass(frozen=True)
class Audience:
    topic: str | None = None

    def conditions(self, at: datetime, *, with_paused: bool = False) -> list[Any]:
        person = subscribers.c
        conditions: list[Any] = [
            person.status == str(Status.ACTIVE),
            person.erased_at.is_(None),
        ]
        if not with_paused:
            conditions.append(or_(person.paused_until.is_(None), person.paused_until <= at))
        if self.topic:
            conditions.append(or_(follows_topic(self.topic), follows_no_topic()))
        return conditions

    def count(self, engine: Engine) -> int:
        with reading(engine).connect() as connection:
            return connection.execute(
                select(func.count()).select_from(subscribers).where(*self.conditions(now()))
            ).scalar_one()

    def describe(self) -> str:
        return f"following '{self.topic}' or no topic" if self.topic else "all"


def follows_no_topic() -> Any:
    """An empty JSON list, as SQLAlchemy writes it ("[]") on SQLite and PostgreSQL."""
    return cast(subscribers.c.topics, String) == "[]"


def check_topic(workspace: Workspace, engine: Engine, topic: str | None) -> None:
    """A topic nobody could mean (no snippet's tag, no subscriber's topic) is a typo: refuse
    it rather than send to the people who follow nothing."""
    if not topic:
        return
    tags = {tag for snippet in Library(workspace).snippets() for tag in snippet.meta.tags}
    if topic in tags:
        return
    with reading(engine).connect() as connection:
        if connection.execute(select(exists().where(follows_topic(topic)))).scalar():
            return
    close = difflib.get_close_matches(topic, sorted(tags), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    known = f" (snippet tags: {', '.join(sorted(tags))})" if tags and not close else ""
    raise InputError(f"--topic: unknown topic '{topic}'{hint}{known}")
