"""`newsletter status`: the daemon, upcoming and missed schedules, running sends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from newsletter.domain.delivery import SendStatus
from newsletter.domain.schedule import ScheduleState
from newsletter.infra.db.clock import now
from newsletter.infra.workspace import Workspace
from newsletter.services.daemon import daemon_rows, is_alive
from newsletter.services.ledger import Ledger
from newsletter.services.scheduling import ScheduleBook

RUNNING = (SendStatus.QUEUED, SendStatus.SENDING, SendStatus.PAUSED)


def status_of(workspace: Workspace, engine: Engine) -> dict[str, Any]:
    at = now()
    alive = [row for row in daemon_rows(engine) if is_alive(row, at)]
    active = next((row for row in alive if row["state"] == "active"), None)
    daemon: dict[str, Any] = {
        "state": "none",
        "standby": sum(r["state"] == "standby" for r in alive),
    }
    shown = active or (alive[0] if alive else None)  # the active one, else a standby
    if shown is not None:
        daemon.update(
            state=shown["state"],
            host=shown["host"],
            pid=shown["pid"],
            since=shown["started_at"],
            heartbeat=shown["heartbeat_at"],
        )
    records = ScheduleBook(workspace, engine).list()
    upcoming = [
        {"id": r.id, "what": r.what, "due_at": r.due_at, "timezone": r.timezone}
        for r in records
        if r.state == ScheduleState.SCHEDULED and r.due_at is not None
    ]
    missed = [
        {"id": r.id, "what": r.what, "outcome": r.outcome}
        for r in records
        if r.state == ScheduleState.MISSED
    ]
    sends = []
    for record in Ledger(engine).list():
        if record.status in RUNNING:
            handled = sum(record.counts[s] for s in ("sent", "failed", "skipped", "uncertain"))
            sends.append(
                {
                    "id": record.id,
                    "issue_slug": record.issue_slug,
                    "status": str(record.status),
                    "handled": handled,
                    "total": record.total,
                }
            )
    return {"daemon": daemon, "upcoming": upcoming, "missed": missed, "sends": sends}
