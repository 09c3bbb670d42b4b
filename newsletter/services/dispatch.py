"""A send's worker: claim a batch, personalize it from the one frozen render, and hand it to
the transport recipient by recipient (`Handover`), recording outcomes as they come.

Several threads of one process, and several processes on several machines (PostgreSQL),
can work on one send; each claim is theirs alone. A crash leaves claimed rows that were
never handed over (they go back to the queue) or handed over with no outcome (at most one
window per thread; with the worker's journal, only what was in the server's hands: they
become uncertain, listed by `sends show` and resent only on request). `request_stop`
(SIGTERM, SIGINT) lets every message in the transport's hands finish, records it, and
gives the rest of the claims back: nothing is left uncertain.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from newsletter.domain.delivery import DeliveryStatus, SendStatus, backoff_delay
from newsletter.domain.list_headers import ListIdentity, recipient_links
from newsletter.domain.personalize import Recipient, RenderedIssue, delivery_key
from newsletter.domain.subscriber import first_name_of
from newsletter.domain.tokens import Purpose, Signer
from newsletter.infra.db.clock import now
from newsletter.infra.journal import Journal
from newsletter.infra.transports.base import (
    Outcome,
    Result,
    Transport,
    TransportFatal,
    TransportUnavailable,
)
from newsletter.services.claims import HOST, Batch, Claimed, Verdict, WorkQueue
from newsletter.services.handover import WINDOW, Handover
from newsletter.services.ledger import Ledger, SendRecord
from newsletter.services.throttle import TokenBucket
from newsletter.services.watch import StatusWatch

HEARTBEAT_SECONDS = 10.0
JOIN_POLL_SECONDS = 0.2  # the main thread wakes this often to run signal handlers
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
    # Rounds (each thread trying once) of an unreachable server before the send pauses.
    max_unreachable_rounds: int = 4
    backoff_base: float = 30.0
    window: int = WINDOW  # recipients handed over per commit, for per-message transports


def recipient_for(
    claim: Claimed,
    identity: ListIdentity,
    signer: Signer,
    send_id: int | None,
    clicks: bool = False,
) -> Recipient:
    """`clicks`: the render has tracked links, which need the recipient's click token."""
    links = recipient_links(identity, signer, claim.subscriber_id, send_id)
    return_path = ""
    if identity.bounce_domain:
        token = signer.sign(Purpose.BOUNCE, claim.subscriber_id, send_id)
        return_path = f"bounces+{token}@{identity.bounce_domain}"
    return Recipient(
        email=claim.email,
        first_name=first_name_of(claim.name),
        unsubscribe_url=links.unsubscribe_url,
        preferences_url=links.preferences_url,
        name=claim.name,
        key=delivery_key(claim.subscriber_id),
        subscriber_id=claim.subscriber_id,
        headers=tuple(links.headers.items()),
        return_path=return_path,
        click_token=signer.sign(Purpose.CLICK, claim.subscriber_id, send_id) if clicks else "",
    )


def stream_of(send_id: int) -> str:
    return f"send-{send_id}"


@dataclass
class _Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    consecutive_failures: int = 0
    unreachable: int = 0  # transport calls in a row that could not reach the server
    last_error: str | None = None
    errors: list[BaseException] = field(default_factory=list)


class Dispatcher:
    """Works on one send per `run`; `request_stop` may come from a signal handler."""

    def __init__(
        self,
        ledger: Ledger,
        transport: Transport,
        identity: ListIdentity,
        signer: Signer,
        options: SendOptions,
        on_handled: Callable[[int], None] | None = None,
        on_waiting: Callable[[float, str], None] | None = None,
        journals: Path | None = None,
    ) -> None:
        self.ledger = ledger
        self.queue = WorkQueue(ledger.engine, journals)
        self.journals = journals
        self.transport = transport
        self.identity = identity
        self.signer = signer
        self.options = options
        self.on_handled = on_handled or (lambda handled: None)
        self.on_waiting = on_waiting or (lambda seconds, reason: None)
        self.bucket = TokenBucket(options.rate)
        self.stopped = threading.Event()  # set by request_stop, a pause or an error
        self.interrupted = False  # a stop was requested (not a pause or an error)

    def request_stop(self) -> None:
        """Stop claiming; let messages in the transport's hands finish; give the rest back."""
        self.interrupted = True
        self.stopped.set()

    def run(self, send_id: int) -> SendRecord:
        """Work on the send until nothing is left for this process, it is paused, or a stop
        was requested."""
        ledger = self.ledger
        self.queue.recover(send_id)
        if self.stopped.is_set() or not ledger.set_status(
            send_id, SendStatus.SENDING, only_from=(SendStatus.QUEUED, SendStatus.SENDING)
        ):
            return ledger.get(send_id)  # paused, cancelled or done: nothing to do
        rendered = ledger.rendered(send_id)
        worker = self.queue.register_worker(send_id)
        journal = Journal(self.journals, worker, HOST) if self.journals else None
        shared = _Shared(stop=self.stopped)
        watch = StatusWatch(self.queue, send_id, worker)
        beat = threading.Thread(target=self._heartbeat, args=(worker, shared), daemon=True)
        beat.start()
        threads = [
            threading.Thread(
                target=self._work,
                args=(send_id, worker, rendered, watch, journal, shared),
                name=f"send-{send_id}-{n}",
            )
            for n in range(max(1, self.options.concurrency))
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                # Joined in short waits: signal handlers run in this thread, between waits,
                # and the process never gets past here while a worker thread still runs.
                while thread.is_alive():
                    thread.join(JOIN_POLL_SECONDS)
        finally:
            shared.stop.set()
            beat.join(timeout=HEARTBEAT_SECONDS)
            self.queue.unregister_worker(worker)
            self.transport.close()
            if journal is not None:
                journal.close(remove=not shared.errors)
        if shared.errors:
            raise shared.errors[0]
        return ledger.get(send_id)

    def _heartbeat(self, worker: str, shared: _Shared) -> None:
        while not shared.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.queue.heartbeat(worker)
            except Exception:  # a missed beat is retried; a silent worker loses its claims
                log.warning("heartbeat of worker %s failed", worker, exc_info=True)

    def _work(
        self,
        send_id: int,
        worker: str,
        rendered: RenderedIssue,
        watch: StatusWatch,
        journal: Journal | None,
        shared: _Shared,
    ) -> None:
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
                self._deliver(batch, rendered, watch, journal, shared)
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
            due_in = (soonest - now()).total_seconds()
            wait = max(0.05, min(1.0, due_in))
            if due_in > 1.0 and not claimed:
                self.on_waiting(due_in, shared.last_error or "waiting to retry")
        shared.stop.wait(wait)
        return False

    def _deliver(
        self,
        batch: Batch,
        rendered: RenderedIssue,
        watch: StatusWatch,
        journal: Journal | None,
        shared: _Shared,
    ) -> None:
        send_id = batch.send_id
        clicks = "click_token" in set.union(*rendered.placeholders())
        handover = Handover(
            self.queue,
            batch,
            [recipient_for(c, self.identity, self.signer, send_id, clicks) for c in batch.claims],
            watch,
            shared.stop,
            self._verdict,
            window=self.options.window if self.transport.per_message else None,
            on_handled=self.on_handled,
            journal=journal,
        )
        try:
            for outcome in self.transport.send(
                rendered, handover.recipients(), stream=stream_of(send_id)
            ):
                handover.accept(outcome)
                self._watch_failures(send_id, outcome, shared)
        except TransportFatal as exc:
            # The transport guarantees that what it did not answer for did not go out.
            handover.finish(DeliveryStatus.QUEUED, f"transport refused: {exc}")
            self._pause(send_id, f"transport refused: {exc}", shared)
        except TransportUnavailable as exc:
            self._unreachable(handover, str(exc), shared)
        except Exception as exc:
            if handover.failure is not None:
                raise handover.failure from None  # ours (the database), not the transport's
            # Unknown state: what was handed over may or may not have gone out.
            handover.finish(DeliveryStatus.UNCERTAIN, f"transport error: {exc}")
            self._pause(send_id, f"transport error: {exc}", shared)
        else:
            if handover.failure is not None:
                raise handover.failure
            # A transport that forgot someone: we cannot know, so say so.
            handover.finish(DeliveryStatus.UNCERTAIN, "the transport reported no outcome")

    def _unreachable(self, handover: Handover, reason: str, shared: _Shared) -> None:
        """Nothing left: back to the queue after a delay that grows with each round; after
        `max_unreachable_rounds` rounds the send pauses, saying why."""
        threads = max(1, self.options.concurrency)
        with shared.lock:
            shared.unreachable += 1
            shared.last_error = reason
            rounds = (shared.unreachable + threads - 1) // threads
        delay = backoff_delay(rounds, base=self.options.backoff_base)
        handover.finish(DeliveryStatus.QUEUED, reason, now() + timedelta(seconds=delay))
        if rounds >= self.options.max_unreachable_rounds:
            self._pause(send_id=handover.batch.send_id, reason=reason, shared=shared)
        else:
            self.on_waiting(delay, reason)

    def _verdict(self, claim: Claimed, outcome: Outcome) -> Verdict:
        if outcome.error and claim.email and claim.email.lower() in outcome.error.lower():
            # Servers echo the recipient ("550 5.1.1 <ann@x>: ..."): stored without it,
            # so an erasure leaves no address behind in the ledger.
            pattern = re.compile(re.escape(claim.email), re.IGNORECASE)
            outcome = outcome._replace(error=pattern.sub("[recipient]", outcome.error))
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

    def _watch_failures(self, send_id: int, outcome: Outcome, shared: _Shared) -> None:
        """Too many failures in a row pause the send instead of burning the list."""
        if outcome.result == Result.SENT:
            if shared.consecutive_failures or shared.unreachable:
                with shared.lock:
                    shared.consecutive_failures = shared.unreachable = 0
            return
        if outcome.result == Result.UNCERTAIN:
            return
        with shared.lock:
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
