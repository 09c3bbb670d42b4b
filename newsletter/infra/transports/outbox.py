"""The default transport: one RFC 5322 .eml file per recipient under STATE/outbox/<stream>/.

File names come from the delivery key, so sending again overwrites instead of duplicating.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from newsletter.domain.message import MessageTemplate, Sender, message_id
from newsletter.domain.personalize import Recipient, RenderedIssue
from newsletter.infra.files import write_files_atomically
from newsletter.infra.transports.base import Outcome, Result


class OutboxTransport:
    name = "outbox"

    def __init__(self, folder: Path, sender: Sender) -> None:
        self.folder = folder
        self.sender = sender

    def send(
        self,
        rendered: RenderedIssue,
        recipients: Sequence[Recipient],
        *,
        stream: str,
        subject_prefix: str = "",
    ) -> list[Outcome]:
        target = self.folder / stream
        template = MessageTemplate(
            rendered, self.sender, date=datetime.now(UTC), subject_prefix=subject_prefix
        )
        outcomes: list[Outcome] = []
        files: dict[str, bytes] = {}
        for recipient in recipients:
            msgid = message_id(stream, recipient.key, self.sender.domain)
            files[f"{recipient.key}.eml"] = template.render(recipient, msgid)
            outcomes.append(Outcome(recipient.key, Result.SENT, provider_id=msgid))
        write_files_atomically(target, files)
        return outcomes

    def close(self) -> None:
        pass


def forget(folder: Path, key: str) -> int:
    """GDPR erasure reaches the outbox too: remove every message written for this key."""
    removed = 0
    for path in folder.glob(f"*/{key}.eml"):
        path.unlink()
        removed += 1
    return removed
