"""The default transport: one RFC 5322 .eml file per recipient under STATE/outbox/<stream>/.

File names come from the delivery key, so sending again overwrites instead of duplicating.
Each file is written under a temporary name and renamed into place before its outcome is
reported: a file that exists is a message that was sent, whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from newsletter.domain.message import MessageTemplate, Sender, message_id
from newsletter.domain.personalize import Recipient, RenderedIssue
from newsletter.infra.files import write_files_atomically
from newsletter.infra.transports.base import Outcome, Result


class OutboxTransport:
    name = "outbox"
    per_message = True

    def __init__(self, folder: Path, sender: Sender) -> None:
        self.folder = folder
        self.sender = sender

    def probe(self) -> None:
        write_files_atomically(self.folder, {})  # the folder can be made and written to

    def send(
        self,
        rendered: RenderedIssue,
        recipients: Iterable[Recipient],
        *,
        stream: str,
        subject_prefix: str = "",
    ) -> Iterator[Outcome]:
        target = self.folder / stream
        template = MessageTemplate(
            rendered, self.sender, date=datetime.now(UTC), subject_prefix=subject_prefix
        )
        for recipient in recipients:
            msgid = message_id(stream, recipient.key, self.sender.domain)
            message = template.render(recipient, msgid)
            write_files_atomically(target, {f"{recipient.key}.eml": message})
            yield Outcome(recipient.key, Result.SENT, provider_id=msgid)

    def path_of(self, stream: str, key: str) -> Path:
        return self.folder / stream / f"{key}.eml"

    def close(self) -> None:
        pass


def forget(folder: Path, key: str, address: str | None = None) -> int:
    """GDPR erasure reaches the outbox too: remove every message written for this key, and
    the test sends (named by position, not by subscriber) that went to the address."""
    removed = 0
    for path in folder.glob(f"*/{key}.eml"):
        path.unlink()
        removed += 1
    if address:
        needle = address.lower().encode()
        for path in folder.glob("test-*/*.eml"):
            if needle in path.read_bytes().lower():
                path.unlink()
                removed += 1
    return removed
