"""Handing one claimed batch to a transport, recipient by recipient, so that a crash costs
a few messages, not a batch.

The transport pulls recipients from `Handover.recipients()` just before each goes out. Each
pull re-checks the subscriber (`StatusWatch`), and every `window` recipients (or
`flush_seconds`, whichever comes first) one transaction records the outcomes so far and
marks the next window handed over. A worker killed at any moment therefore leaves at most
one window per thread handed over without an outcome; the rest of its claim was never
handed over and goes back to the queue. With a `Journal`, each hand-over and each answer is
also appended to a local file as it happens, so recovery on the same machine narrows the
window down to the messages that were in the server's hands. Transports that send a whole
batch in one request (SendGrid) hand it over in one window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from newsletter.domain.delivery import TERMINAL, DeliveryStatus
from newsletter.domain.personalize import Recipient
from newsletter.infra.journal import Journal
from newsletter.infra.transports.base import Outcome, Result
from newsletter.services.claims import Batch, Claimed, Verdict, WorkQueue
from newsletter.services.watch import StatusWatch

WINDOW = 20  # recipients handed over per commit, per thread
FLUSH_SECONDS = 0.25  # and at least this often, when messages are slow


class Handover:
    def __init__(
        self,
        queue: WorkQueue,
        batch: Batch,
        recipients: list[Recipient],
        watch: StatusWatch,
        stop: threading.Event,
        judge: Callable[[Claimed, Outcome], Verdict],
        *,
        window: int | None = WINDOW,
        flush_seconds: float = FLUSH_SECONDS,
        on_handled: Callable[[int], None] = lambda count: None,
        journal: Journal | None = None,
    ) -> None:
        self.queue = queue
        self.batch = batch
        self.watch = watch
        self.stop = stop
        self.judge = judge
        self.window = window or len(recipients)
        self.flush_seconds = flush_seconds if window else float("inf")
        self.on_handled = on_handled
        self.journal = journal
        self._per_message = window is not None
        self._lines: list[str] = []  # journal lines held back (whole-batch transports)
        self._recipients = recipients
        self._claims = {r.key: c for r, c in zip(recipients, batch.claims, strict=True)}
        self._verdicts: list[Verdict] = []  # not yet written
        self._settled: set[str] = set()  # keys with a verdict (written or not)
        self._pulled = 0  # how far the transport got
        self._flushed_at = time.monotonic()
        self.taken_over = False
        self.failure: BaseException | None = None  # raised on our side, not the transport's

    def recipients(self) -> Iterator[Recipient]:
        """What the transport pulls: stops early on a stop request or a takeover."""
        handed_until = 0
        try:
            for index, recipient in enumerate(self._recipients):
                if self.stop.is_set():
                    return
                if index >= handed_until or time.monotonic() - self._flushed_at > (
                    self.flush_seconds
                ):
                    window = self._recipients[index : index + self.window]
                    if not self._checkpoint([self._claims[r.key].delivery_id for r in window]):
                        self.taken_over = True
                        return
                    handed_until = index + len(window)
                self._pulled = index + 1
                claim = self._claims[recipient.key]
                # After the checkpoint, which may wait for the database: the status seen
                # here is at most `watch.max_age` old when the message leaves.
                reason = self.watch.reason(recipient.subscriber_id)
                if reason is not None:
                    skipped = DeliveryStatus.SKIPPED
                    verdict = Verdict(claim.delivery_id, skipped, claim.attempts, error=reason)
                    self._settle(recipient.key, verdict)
                    continue
                self._note(f"P {claim.delivery_id}\n")
                yield recipient
        except Exception as exc:
            self.failure = exc
            raise
        finally:
            self._flush_journal()  # a whole batch: noted before the request goes out

    def accept(self, outcome: Outcome) -> Verdict | None:
        claim = self._claims.get(outcome.key)
        if claim is None or outcome.key in self._settled:
            return None  # not ours, or answered twice: the first answer stands
        verdict = self.judge(claim, outcome)
        self._settle(outcome.key, verdict)
        if outcome.result == Result.SENT:
            self._note(f"S {claim.delivery_id} {outcome.provider_id or '-'}\n")
        elif outcome.result in (Result.RETRY, Result.FAILED):
            self._note(f"N {claim.delivery_id}\n")
        if not self._per_message and len(self._settled) >= self._pulled:
            self._flush_journal()  # the request's answers, all in
        return verdict

    def finish(
        self,
        unanswered: DeliveryStatus,
        error: str,
        retry_at: datetime | None = None,
    ) -> None:
        """Write what is left. Recipients handed over with no answer end `unanswered`
        (uncertain, or queued again when the transport guarantees they did not go out);
        those never pulled go back to the queue untouched (after `retry_at`, if given)."""
        for position, recipient in enumerate(self._recipients):
            if recipient.key in self._settled:
                continue
            claim = self._claims[recipient.key]
            if position < self._pulled and unanswered == DeliveryStatus.UNCERTAIN:
                verdict = Verdict(
                    claim.delivery_id, DeliveryStatus.UNCERTAIN, claim.attempts + 1, error=error
                )
            elif position < self._pulled:
                verdict = Verdict(
                    claim.delivery_id, DeliveryStatus.QUEUED, claim.attempts, None, error, retry_at
                )
            else:
                verdict = Verdict(
                    claim.delivery_id,
                    DeliveryStatus.QUEUED,
                    claim.attempts,
                    None,
                    error if retry_at else None,
                    retry_at,
                )
            self._settle(recipient.key, verdict)
        self._checkpoint([])

    def _note(self, line: str) -> None:
        if self.journal is None:
            return
        if self._per_message:
            self.journal.write(line)
        else:
            self._lines.append(line)

    def _flush_journal(self) -> None:
        if self._lines and self.journal is not None:
            lines, self._lines = self._lines, []
            self.journal.write("".join(lines))

    def _settle(self, key: str, verdict: Verdict) -> None:
        self._settled.add(key)
        self._verdicts.append(verdict)

    def _checkpoint(self, hand: list[int]) -> bool:
        verdicts, self._verdicts = self._verdicts, []
        if not verdicts and not hand:
            return True
        ok = self.queue.checkpoint(self.batch, verdicts, hand)
        self._flushed_at = time.monotonic()
        handled = sum(1 for v in verdicts if v.status in TERMINAL)
        if handled:
            self.on_handled(handled)
        return ok
