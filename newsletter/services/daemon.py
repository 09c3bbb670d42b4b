"""The scheduling daemon: one active per database, the others stand by.

The schedule of record is our table (`ScheduleBook`); APScheduler only runs the jobs on
time. Every second the active daemon reads one version number and, when another process
changed a schedule, mirrors the table into the scheduler again: a new, moved or cancelled
schedule is seen within about a second, and an idle daemon asks the database one cheap
question a second. Firing makes the send in the same transaction that moves the schedule
out of `scheduled`; the daemon then dispatches it like `newsletter send`, and on a stop
request it stops the way a send stops (nothing left uncertain).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, delete, insert, select, update

from newsletter.domain.delivery import SendStatus
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import daemons, sends, workers
from newsletter.infra.leader import LeaderLock
from newsletter.infra.workspace import Workspace
from newsletter.services.claims import HOST, WorkQueue
from newsletter.services.dispatch import Dispatcher
from newsletter.services.firing import fire, mark_missed
from newsletter.services.ledger import Ledger
from newsletter.services.scheduling import ScheduleBook
from newsletter.services.sending import dispatcher_for, journal_folder, options_for

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 5.0
FULL_SYNC_SECONDS = 30.0  # even with no change seen: a clock that jumped, a lost job
# Only schedules due this soon are mirrored into APScheduler (a full sync every 30 s brings
# the next ones in well before their time): start-up does not grow with the table.
HORIZON = timedelta(minutes=5)
Log = Callable[..., None]  # log(event, **fields)


class Daemon:
    def __init__(
        self,
        workspace: Workspace,
        engine: Engine,
        log: Log,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.workspace = workspace
        self.engine = engine
        self.log = log
        self.poll_seconds = poll_seconds
        self.book = ScheduleBook(workspace, engine, role="daemon")
        self.lock = LeaderLock(engine, workspace.state_dir)
        self.grace = workspace.settings.schedule.misfire_grace
        self.id = uuid.uuid4().hex[:16]
        self.stopping = threading.Event()
        self._guard = threading.Lock()
        self._dispatchers: set[Dispatcher] = set()
        self._firing: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._scheduler: BackgroundScheduler | None = None
        self._version: str | None = None
        self._synced_at = 0.0
        self._beat_at = 0.0

    def request_stop(self) -> None:
        """Stop firing; let running sends stop as a send stops; then release the lock."""
        self.stopping.set()
        with self._guard:
            for dispatcher in self._dispatchers:
                dispatcher.request_stop()

    # -- the loop ----------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> None:
        self._beat("standby")
        try:
            if once:
                if not self.lock.try_acquire():
                    self.log("standby", reason="another daemon is active")
                    return
                self._activate(took_over=False, start_scheduler=False)
                for record in self.book.waiting(now()):
                    self._fire(record.id)
                self._join()
                return
            waited = False
            while not self.stopping.is_set():
                if not self.lock.held:
                    if self.lock.try_acquire():
                        self._activate(took_over=waited, start_scheduler=True)
                    else:
                        if not waited:
                            self.log("standby", reason="another daemon is active")
                            waited = True
                        self._heartbeat("standby")
                        self.stopping.wait(self.poll_seconds)
                        continue
                self._tick()
                self.stopping.wait(self.poll_seconds)
        finally:
            self._shutdown()

    def _activate(self, *, took_over: bool, start_scheduler: bool) -> None:
        self.log("took over" if took_over else "active", daemon=self.id)
        self._beat("active")
        self._resume_sends()
        if not start_scheduler:
            self._mark_missed(now())  # the scheduler's first sync does it otherwise
        else:
            self._scheduler = BackgroundScheduler(
                timezone=UTC,
                executors={"default": ThreadPoolExecutor(4)},
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": int(self.grace.total_seconds()) or 1,
                },
            )
            self._scheduler.start()
            self._sync(initial=True)
            self.log("ready", waiting=self.book.count_waiting())

    def _tick(self) -> None:
        if not self.lock.still_held():
            self.log("lost lock", reason="the database connection holding it closed")
            self._stop_scheduler()
            return
        version = self.book.version()
        if version != self._version or time.monotonic() - self._synced_at > FULL_SYNC_SECONDS:
            self._version = version
            self._sync()
        self._heartbeat("active")

    def _sync(self, *, initial: bool = False) -> None:
        """Mirror the schedules due within the horizon into APScheduler: add, move, drop
        (at start, one "ready" line rather than one per schedule)."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        self._synced_at = time.monotonic()
        at = now()
        self._mark_missed(at)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        wanted: set[str] = set()
        for record in self.book.waiting(at + HORIZON):
            with self._guard:
                if record.id in self._firing or record.due_at is None:
                    continue
            job_id = f"schedule-{record.id}"
            wanted.add(job_id)
            run_at = max(record.due_at, at)
            job = jobs.get(job_id)
            if job is None:
                scheduler.add_job(
                    self._fire, DateTrigger(run_date=run_at), id=job_id, args=[record.id]
                )
                if not initial:
                    self.log("picked up", schedule=record.id, issue=record.what, due=record.due_at)
            elif job.next_run_time is None or (
                abs((job.next_run_time - run_at).total_seconds()) > 0.5 and record.due_at > at
            ):
                scheduler.reschedule_job(job_id, trigger=DateTrigger(run_date=run_at))
                self.log("moved", schedule=record.id, issue=record.what, due=record.due_at)
        for job_id in set(jobs) - wanted:
            if job_id.startswith("schedule-"):
                scheduler.remove_job(job_id)
                self.log("dropped", schedule=int(job_id.split("-", 1)[1]))

    def _mark_missed(self, at: datetime) -> None:
        for missed in mark_missed(self.book, at, self.grace):
            self.log("missed", schedule=missed.id, issue=missed.issue_slug, due=missed.due_at)

    # -- firing and sending ------------------------------------------------------------------

    def _fire(self, schedule_id: int) -> None:
        if self.stopping.is_set():
            return
        with self._guard:
            if schedule_id in self._firing:
                return
            self._firing.add(schedule_id)
        try:
            fired = fire(self.book, schedule_id, now())
            if fired is None:
                return
            record = fired.schedule
            event = fired.outcome.split(":", 1)[0]
            self.log(
                event,
                schedule=record.id,
                issue=record.what,
                send=fired.send_id,
                outcome=fired.outcome,
            )
            if fired.send_id is not None:
                self._send(fired.send_id)
        except Exception as exc:  # one schedule's trouble must not stop the daemon
            self.log("error", schedule=schedule_id, error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._guard:
                self._firing.discard(schedule_id)

    def _send(self, send_id: int) -> None:
        ledger = Ledger(self.engine)
        record = ledger.get(send_id)
        dispatcher = dispatcher_for(
            self.workspace, ledger, record, options_for(self.workspace, record.transport)
        )
        with self._guard:
            if self.stopping.is_set():
                return
            self._dispatchers.add(dispatcher)
        try:
            self.log("sending", send=send_id, issue=record.issue_slug, total=record.total)
            final = dispatcher.run(send_id)
            self.log(
                "stopped" if dispatcher.interrupted else str(final.status),
                send=send_id,
                issue=final.issue_slug,
                **{k: v for k, v in final.counts.items() if v},
            )
        finally:
            with self._guard:
                self._dispatchers.discard(dispatcher)

    def _resume_sends(self) -> None:
        """Sends left running by a process that died: recovery first, then on with them
        (the ledger makes this safe). Sends another live worker is on are left to it."""
        queue = WorkQueue(self.engine, journal_folder(self.workspace))
        with self.engine.connect() as connection:
            unfinished = (
                connection.execute(
                    select(sends.c.id).where(
                        sends.c.status.in_([str(SendStatus.QUEUED), str(SendStatus.SENDING)])
                    )
                )
                .scalars()
                .all()
            )
        for send_id in unfinished:
            queue.recover(send_id)
            with self.engine.connect() as connection:
                busy = connection.execute(
                    select(workers.c.id).where(workers.c.send_id == send_id).limit(1)
                ).first()
            if busy is None:
                self.log("resumed", send=send_id)
                thread = threading.Thread(target=self._send, args=(send_id,), daemon=False)
                thread.start()
                self._threads.append(thread)

    def _join(self) -> None:
        for thread in self._threads:
            while thread.is_alive():
                thread.join(0.2)

    def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)  # running firings finish (sends stop)
            self._scheduler = None

    def _shutdown(self) -> None:
        self.request_stop()
        self._stop_scheduler()
        self._join()
        self.lock.release()
        with self.engine.begin() as connection:
            connection.execute(delete(daemons).where(daemons.c.id == self.id))

    # -- the daemons table (for `newsletter status`) -----------------------------------------

    def _beat(self, state: str) -> None:
        at = now()
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(daemons).where(daemons.c.id == self.id).values(state=state, heartbeat_at=at)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(daemons).values(
                        id=self.id,
                        host=HOST,
                        pid=os.getpid(),
                        state=state,
                        started_at=at,
                        heartbeat_at=at,
                    )
                )
        self._beat_at = time.monotonic()

    def _heartbeat(self, state: str) -> None:
        if time.monotonic() - self._beat_at >= HEARTBEAT_SECONDS:
            self._beat(state)


def daemon_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(daemons))]


def is_alive(row: dict[str, Any], at: datetime) -> bool:
    beat = row["heartbeat_at"]
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (at - beat).total_seconds() < 3 * HEARTBEAT_SECONDS
