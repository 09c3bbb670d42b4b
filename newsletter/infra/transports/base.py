"""The transport interface: `send(rendered, recipients, stream=...) -> outcomes`.

A transport gets the one render and the batch's recipients, so providers that personalize
on their side (SendGrid) can take a whole batch in one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

from newsletter.domain.personalize import Recipient, RenderedIssue


class Result(StrEnum):
    SENT = "sent"  # accepted by the server or provider (or written, for the outbox)
    FAILED = "failed"  # permanent: do not retry
    RETRY = "retry"  # transient, and certainly not delivered: try again later
    UNCERTAIN = "uncertain"  # the connection died while the server had it: maybe delivered


class Outcome(NamedTuple):  # one per recipient: cheaper to make than a frozen dataclass
    key: str  # the recipient's delivery key
    result: Result
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    attempted: bool = True  # False: never tried (e.g. the connection broke before its turn)


class TransportFatal(Exception):
    """Nothing in this call was sent and nothing will be until a person acts (bad
    credentials, refused sender): the send pauses instead of burning the list."""


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
