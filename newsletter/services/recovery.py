"""Taking over from workers that are gone: which workers of a send are dead, which claimed
batches are orphaned, and what becomes of their deliveries (queued again, sent per a
trusted journal, or uncertain).

Kept apart from the claiming itself (services/claims.py) because it is the one place that
judges other processes: by heartbeat, by pid on this host, and by their journals
(infra/journal.py). `WorkQueue.recover` runs it inside its own transaction.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, delete, func, select, update

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.infra import journal
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.schema import deliveries, sends, workers

LEASE = timedelta(seconds=60)  # a worker silent for this long is taken for dead


class Takeover(NamedTuple):
    requeued: int
    uncertain: int
    replayed: set[str]  # workers whose journal was used: forgotten once this is committed


def take_over(
    connection: Connection,
    send_id: int,
    cutoff: datetime,
    host: str,
    journals: Path | None,
) -> Takeover:
    """Release the claims of workers that are gone (dead, silent since before `cutoff`, or
    no longer registered at all): never handed over -> queued again; handed over with no
    outcome -> uncertain. `host` is this machine: only its pids and journals can be checked.
    """
    rows = connection.execute(
        select(workers).where(workers.c.send_id == send_id).with_for_update()
    ).all()
    dead = {row.id for row in rows if _is_dead(row, cutoff, host)}
    live = {row.id for row in rows} - dead
    batches = connection.execute(
        select(deliveries.c.claimed_by, func.max(deliveries.c.claimed_at))
        .where(
            deliveries.c.send_id == send_id,
            deliveries.c.status == str(DeliveryStatus.CLAIMED),
        )
        .group_by(deliveries.c.claimed_by)
    ).all()
    # A batch whose worker is not registered at all (it stopped on an error) is taken over
    # only once it is older than the lease: a worker registering right now may not be in
    # our snapshot yet.
    orphaned = [
        batch
        for batch, claimed_at in batches
        if batch
        and batch.rsplit("/", 1)[0] not in live
        and (batch.rsplit("/", 1)[0] in dead or (utc(claimed_at) or cutoff) < cutoff)
    ]
    if dead:
        connection.execute(delete(workers).where(workers.c.id.in_(dead)))
    if not orphaned:
        return Takeover(0, 0, set())
    replayed = _replay(connection, send_id, orphaned, host, journals)
    claimed = and_(
        deliveries.c.send_id == send_id,
        deliveries.c.status == str(DeliveryStatus.CLAIMED),
        deliveries.c.claimed_by.in_(orphaned),
    )
    cancelled = connection.execute(
        select(sends.c.status).where(sends.c.id == send_id)
    ).scalar() == str(SendStatus.CANCELLED)
    back = (
        {
            "status": str(DeliveryStatus.SKIPPED),
            "last_error": "send cancelled",
            "finished_at": now(),
        }
        if cancelled
        else {"status": str(DeliveryStatus.QUEUED)}
    )
    requeued = connection.execute(
        update(deliveries)
        .where(claimed, deliveries.c.handed_at.is_(None))
        .values(claimed_by=None, claimed_at=None, **back)
    ).rowcount
    uncertain = connection.execute(
        update(deliveries)
        .where(claimed, deliveries.c.handed_at.is_not(None))
        .values(
            status=str(DeliveryStatus.UNCERTAIN),
            finished_at=now(),
            last_error="the sending worker stopped after handing it over",
        )
    ).rowcount
    return Takeover(requeued, uncertain, replayed)


def _replay(
    connection: Connection,
    send_id: int,
    orphaned: list[str],
    host: str,
    journals: Path | None,
) -> set[str]:
    """Narrow a dead worker's hand-over marks down with its journal, when one on this
    machine can be trusted: accepted -> sent; never handed, or certainly refused -> not
    handed (queued again by `take_over`). Returns the workers whose journal was used."""
    if journals is None:
        return set()
    used: set[str] = set()
    for worker_id in {batch.rsplit("/", 1)[0] for batch in orphaned}:
        found = journal.replay(journals, worker_id, host)
        if found is None or _pid_alive(found.pid):
            continue  # a frozen process could still send what it holds: trust nothing
        used.add(worker_id)
        handed = connection.execute(
            select(deliveries.c.id, deliveries.c.attempts).where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == str(DeliveryStatus.CLAIMED),
                deliveries.c.claimed_by.startswith(f"{worker_id}/", autoescape=True),
                deliveries.c.handed_at.is_not(None),
            )
        ).all()
        at = now()
        sent = [
            {
                "_id": i,
                "_attempts": attempts + 1,
                "_provider": found.sent[i],
            }
            for i, attempts in handed
            if i in found.sent
        ]
        unhanded = [
            {"_id": i}
            for i, _ in handed
            if i not in found.sent and (i in found.unsent or i not in found.handed)
        ]
        if sent:
            connection.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("_id"))
                .values(
                    status=str(DeliveryStatus.SENT),
                    attempts=bindparam("_attempts"),
                    provider_message_id=bindparam("_provider"),
                    finished_at=at,
                    claimed_by=None,
                    handed_at=None,
                    last_error=None,
                ),
                sent,
            )
        if unhanded:
            connection.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("_id"))
                .values(handed_at=None),
                unhanded,
            )
    return used


def _is_dead(row: Any, cutoff: datetime, host: str) -> bool:
    if row.host == host and not _pid_alive(row.pid):
        return True
    heartbeat = utc(row.heartbeat_at)
    return heartbeat is not None and heartbeat < cutoff


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
