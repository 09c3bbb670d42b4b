"""A send's worker: claim a batch, personalize it from the one frozen render, mark it
handed over (committed), call the transport, record each recipient's outcome.

Several threads of one process, and several processes on several machines (PostgreSQL),
can work on one send; each claim is theirs alone. A crash leaves claimed rows that were
never handed over (they go back to the queue) or handed over with no outcome (they become
uncertain, listed by `sends show` and resent only on request).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from newsletter.domain.delivery import DeliveryStatus, SendStatus, backoff_delay
from newsletter.domain.list_headers import ListIdentity, recipient_links
from newsletter.domain.personalize import Recipient, RenderedIssue, delivery_key
from newsletter.domain.subscriber import first_name_of
from newsletter.domain.tokens import Signer
from newsletter.infra.transports.base import Outcome, Result, Transport, TransportFatal
from newsletter.services.claims import Batch, Claimed, Verdict, WorkQueue
from newsletter.services.ledger import Ledger, SendRecord
from newsletter.services.subscribers import now
from newsletter.services.throttle import TokenBucket

HEARTBEAT_SECONDS = 10.0
log = logging.getLogger("newsletter.dispatch")


@dataclass(frozen=True)
class SendOptions:
    batch_size: int = 100
    concurrency: int = 1
    rate: float | None = None  # messages per second over all threads
    # With the base doubling up to a 10-minute cap, 8 attempts span about 35 minutes:
    # long enough for greylisting and short provider outages.
    max_attempts: int = 8
    max_consecutive_failures: int = 50
    backoff_base: float = 30.0


def recipient_for(
    claim: Claimed, identity: ListIdentity, signer: Signer, send_id: int | None
) -> Recipient:
    links = recipient_links(identity, signer, claim.subscriber_id, send_id)
    return Recipient(
        email=claim.email,
        first_name=first_name_of(claim.name),
        unsubscribe_url=links.unsubscribe_url,
        preferences_url=links.preferences_url,
        name=claim.name,
        key=delivery_key(claim.subscriber_id),
        subscriber_id=claim.subscriber_id,
        headers=tuple(links.headers.items()),
    )


def stream_of(send_id: int) -> str:
    return f"send-{send_id}"


@dataclass
class _Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    consecutive_failures: int = 0
    last_error: str | None = None
    errors: list[BaseException] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        ledger: Ledger,
        transport: Transport,
        identity: ListIdentity,
        signer: Signer,
        options: SendOptions,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.queue = WorkQueue(ledger.engine)
        self.transport = transport
        self.identity = identity
        self.signer = signer
        self.options = options
        self.on_batch = on_batch or (lambda handled: None)
        self.bucket = TokenBucket(options.rate)

    def run(self, send_id: int) -> SendRecord:
        """Work on the send until nothing is left for this process, or it is paused."""
        ledger = self.ledger
        self.queue.recover(send_id)
        if not ledger.set_status(
            send_id, SendStatus.SENDING, only_from=(SendStatus.QUEUED, SendStatus.SENDING)
        ):
            return ledger.get(send_id)  # paused, cancelled or done: nothing to do
        rendered = ledger.rendered(send_id)
        worker = self.queue.register_worker(send_id)
        shared = _Shared()
        beat = threading.Thread(target=self._heartbeat, args=(worker, shared), daemon=True)
        beat.start()
        threads = [
            threading.Thread(target=self._work, args=(send_id, worker, rendered, shared))
            for _ in range(max(1, self.options.concurrency))
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            shared.stop.set()
            beat.join(timeout=HEARTBEAT_SECONDS)
            self.queue.unregister_worker(worker)
            self.transport.close()
        if shared.errors:
            raise shared.errors[0]
        return ledger.get(send_id)

    def _heartbeat(self, worker: str, shared: _Shared) -> None:
        while not shared.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.queue.heartbeat(worker)
            except Exception:  # a missed beat is retried; a silent worker loses its claims
                log.warning("heartbeat of worker %s failed", worker, exc_info=True)

    def _work(self, send_id: int, worker: str, rendered: RenderedIssue, shared: _Shared) -> None:
        try:
            while not shared.stop.is_set():
                if self.ledger.status(send_id) != SendStatus.SENDING:
                    return  # paused or cancelled from elsewhere
                # Tokens first, then a claim of that size: the claim-time status check is
                # never older than one transport call, and no token waits on a claim.
                allowed = self.bucket.take_up_to(self.options.batch_size)
                batch = self.queue.claim(send_id, worker, allowed)
                self.bucket.give_back(allowed - len(batch.claims))
                if not batch:
                    if self._idle(send_id, shared):
                        return
                    continue
                self._deliver(batch, rendered, shared)
        except BaseException as exc:  # surface in the main thread; stop the others
            shared.errors.append(exc)
            shared.stop.set()

    def _idle(self, send_id: int, shared: _Shared) -> bool:
        """Nothing claimable now: finish the send, wait for retries, or for other workers.
        Returns True when this thread should stop."""
        queued, claimed, soonest = self.queue.pending(send_id)
        if queued == 0 and claimed == 0:
            self.ledger.set_status(send_id, SendStatus.DONE, only_from=(SendStatus.SENDING,))
            return True
        if claimed and not queued:
            self.queue.recover(send_id)  # other workers: alive, or to be taken over
        wait = 0.5
        if queued and soonest is not None:
            wait = max(0.05, min(1.0, (soonest - now()).total_seconds()))
        shared.stop.wait(wait)
        return False

    def _deliver(self, batch: Batch, rendered: RenderedIssue, shared: _Shared) -> None:
        send_id, claimed = batch.send_id, batch.claims
        recipients = [recipient_for(c, self.identity, self.signer, send_id) for c in claimed]
        by_key = {r.key: c for r, c in zip(recipients, claimed, strict=True)}
        if not self.queue.mark_handed(batch):
            self.queue.release(batch)  # some rows were taken over: send none of them
            return
        try:
            outcomes = self.transport.send(rendered, recipients, stream=stream_of(send_id))
        except TransportFatal as exc:
            self.queue.release(batch)  # the transport guarantees none of them went out
            self._pause(send_id, f"transport refused: {exc}", shared)
            return
        except Exception as exc:
            # Unknown state: the batch may or may not have gone out.
            self.queue.record(
                batch,
                [
                    Verdict(
                        c.delivery_id,
                        DeliveryStatus.UNCERTAIN,
                        c.attempts + 1,
                        error=f"transport error: {exc}",
                    )
                    for c in claimed
                ],
            )
            self._pause(send_id, f"transport error: {exc}", shared)
            return
        verdicts = [self._verdict(by_key[o.key], o) for o in outcomes if o.key in by_key]
        answered = {o.key for o in outcomes}
        verdicts += [  # a transport that forgot someone: we cannot know, so say so
            Verdict(
                c.delivery_id,
                DeliveryStatus.UNCERTAIN,
                c.attempts + 1,
                error="the transport reported no outcome",
            )
            for key, c in by_key.items()
            if key not in answered
        ]
        self.queue.record(batch, verdicts)
        self._watch_failures(send_id, outcomes, shared)
        self.on_batch(sum(1 for v in verdicts if v.status != DeliveryStatus.QUEUED))

    def _verdict(self, claim: Claimed, outcome: Outcome) -> Verdict:
        if not outcome.attempted:  # never tried (the connection broke before): costs nothing
            return Verdict(
                claim.delivery_id, DeliveryStatus.QUEUED, claim.attempts, error=outcome.error
            )
        attempts = claim.attempts + 1
        if outcome.result == Result.SENT:
            return Verdict(claim.delivery_id, DeliveryStatus.SENT, attempts, outcome.provider_id)
        if outcome.result == Result.FAILED:
            return Verdict(claim.delivery_id, DeliveryStatus.FAILED, attempts, error=outcome.error)
        if outcome.result == Result.UNCERTAIN:
            return Verdict(
                claim.delivery_id, DeliveryStatus.UNCERTAIN, attempts, error=outcome.error
            )
        if attempts >= self.options.max_attempts:
            return Verdict(
                claim.delivery_id,
                DeliveryStatus.FAILED,
                attempts,
                error=f"gave up after {attempts} attempts: {outcome.error}",
            )
        delay = backoff_delay(attempts, outcome.retry_after, base=self.options.backoff_base)
        return Verdict(
            claim.delivery_id,
            DeliveryStatus.QUEUED,
            attempts,
            error=outcome.error,
            next_attempt_at=now() + timedelta(seconds=delay),
        )

    def _watch_failures(self, send_id: int, outcomes: list[Outcome], shared: _Shared) -> None:
        """Too many failures in a row pause the send instead of burning the list."""
        with shared.lock:
            for outcome in outcomes:
                if outcome.result == Result.SENT:
                    shared.consecutive_failures = 0
                elif outcome.attempted and outcome.result in (Result.FAILED, Result.RETRY):
                    shared.consecutive_failures += 1
                    shared.last_error = outcome.error
            tripped = shared.consecutive_failures >= self.options.max_consecutive_failures
        if tripped:
            reason = f"{shared.consecutive_failures} failures in a row; last: {shared.last_error}"
            self._pause(send_id, reason, shared)

    def _pause(self, send_id: int, reason: str, shared: _Shared) -> None:
        """Pause (never over a cancel or a finish) and stop this process's threads."""
        self.ledger.set_status(send_id, SendStatus.PAUSED, reason, only_from=(SendStatus.SENDING,))
        shared.stop.set()
