"""The default transport: one RFC 5322 .eml file per recipient under STATE/outbox/<stream>/.

File names come from the delivery key, so sending again overwrites instead of duplicating.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from newsletter.domain.message import Sender, build_message, message_id
from newsletter.domain.personalize import Recipient, RenderedIssue, personalize
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
        outcomes: list[Outcome] = []
        files: dict[str, bytes] = {}
        now = datetime.now(UTC)
        for recipient in recipients:
            msgid = message_id(stream, recipient.key, self.sender.domain)
            message = build_message(
                personalize(rendered, recipient),
                recipient,
                self.sender,
                msgid=msgid,
                date=now,
                subject_prefix=subject_prefix,
            )
            files[f"{recipient.key}.eml"] = message.as_bytes()
            outcomes.append(Outcome(recipient.key, Result.SENT, provider_id=msgid))
        write_files_atomically(target, files)
        return outcomes

    def close(self) -> None:
        pass
