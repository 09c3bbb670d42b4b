"""The transport interface: `send(rendered, recipients, stream=...)` yields one outcome per
recipient it was handed.

A transport gets the one render and pulls the batch's recipients from an iterator, so the
dispatcher decides, recipient by recipient, what is handed over: it re-checks each
subscriber's status and records outcomes as they come. Transports that personalize on the
provider's side (SendGrid) pull a whole batch and send it in one request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


class TransportFatal(Exception):
    """Nothing in this call was sent and nothing will be until a person acts (bad
    credentials, refused sender): the send pauses instead of burning the list."""


class TransportUnavailable(Exception):
    """The server cannot be reached: whatever this call was handed and did not answer for
    was certainly not sent. Try again later."""


class Transport(Protocol):
    name: str
    # True: each recipient is pulled just before its own message goes out (SMTP, outbox);
    # False: the whole batch is pulled, then sent in one request (SendGrid).
    per_message: bool

    def send(
        self,
        rendered: RenderedIssue,
        recipients: Iterable[Recipient],
        *,
        stream: str,
        subject_prefix: str = "",
    ) -> Iterator[Outcome]: ...

    def probe(self) -> None:
        """Reach the server and log in, sending nothing: raises TransportUnavailable or
        TransportFatal, so a send that cannot go anywhere is never created."""

    def close(self) -> None: ...
