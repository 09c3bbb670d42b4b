"""The transport interface: `send(rendered, recipients, stream=...) -> outcomes`.

A transport gets the one render and the batch's recipients, so providers that personalize
on their side (SendGrid) can take a whole batch in one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from newsletter.domain.personalize import Recipient, RenderedIssue


class Result(StrEnum):
    SENT = "sent"  # accepted by the server or provider (or written, for the outbox)
    FAILED = "failed"  # permanent: do not retry
    RETRY = "retry"  # transient: try again later


@dataclass(frozen=True)
class Outcome:
    key: str  # the recipient's delivery key
    result: Result
    provider_id: str | None = None
    error: str | None = None


class Transport(Protocol):
    name: str

    def send(
        self,
        rendered: RenderedIssue,
        recipients: Sequence[Recipient],
        *,
        stream: str,
        subject_prefix: str = "",
    ) -> list[Outcome]: ...

    def close(self) -> None: ...
