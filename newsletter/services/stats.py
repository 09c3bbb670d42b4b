"""How a send did: the ledger's outcomes, what providers reported back (deliveries,
bounces, complaints, opens with machine opens apart, clicks; returned mail's bounces and
complaints too), and who left after it, by path. Rates are against delivered (against sent
when no provider reports deliveries)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, distinct, func, or_, select

from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import deliveries, provider_events, sends, subscriber_events
from newsletter.services.feedback import is_hard_bounce
from newsletter.services.ledger import Ledger


@dataclass(frozen=True)
class SendStats:
    id: int
    issue_slug: str
    created_at: datetime
    recipients: int
    sent: int
    failed: int
    skipped: int
    uncertain: int
    delivered: int
    delivered_reported: bool  # False: no provider events; "delivered" is what servers took
    bounced: int
    complained: int
    unsubscribed: dict[str, int]
    opens: int
    machine_opens: int
    clicks: int
    top_links: list[tuple[str, int]] = field(default_factory=list)

    def rate(self, count: int) -> float:
        return count / self.delivered if self.delivered else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rates"] = {
            name: round(self.rate(getattr(self, name)), 4)
            for name in ("bounced", "complained", "opens", "clicks")
        }
        data["rates"]["unsubscribed"] = round(self.rate(sum(self.unsubscribed.values())), 4)
        return data


def send_stats(engine: Engine, send_id: int, links: int = 5) -> SendStats:
    record = Ledger(engine).get(send_id)
    events = provider_events.c
    with reading(engine).connect() as connection:

        def people(*where: Any) -> int:
            return connection.execute(
                select(func.count(distinct(events.subscriber_id))).where(
                    events.send_id == send_id, *where
                )
            ).scalar_one()

        delivered = people(events.kind == "delivered")
        bounced = people(is_hard_bounce(events))
        complained = people(
            or_(
                events.kind == "spamreport",
                and_(events.kind == "complaint", events.provider == "mail"),  # an ARF report
            )
        )
        opens = people(events.kind == "open", events.machine.is_(False))
        machine = people(events.kind == "open", events.machine.is_(True))
        clicks = people(events.kind == "click")
        top = connection.execute(
            select(events.detail, func.count())
            .where(events.send_id == send_id, events.kind == "click", events.detail.is_not(None))
            .group_by(events.detail)
            .order_by(func.count().desc(), events.detail)
            .limit(links)
        ).all()
        left = (
            select(
                subscriber_events.c.source, func.count(distinct(subscriber_events.c.subscriber_id))
            )
            .where(*left_after(connection, send_id, record.created_at))
            .group_by(subscriber_events.c.source)
        )
        unsubscribed = dict(connection.execute(left).all())
    counts = record.counts
    return SendStats(
        id=record.id,
        issue_slug=record.issue_slug,
        created_at=record.created_at,
        recipients=record.total,
        sent=counts["sent"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        uncertain=counts["uncertain"],
        delivered=delivered or counts["sent"],
        delivered_reported=bool(delivered),
        bounced=bounced,
        complained=complained,
        unsubscribed=unsubscribed,
        opens=opens,
        machine_opens=machine,
        clicks=clicks,
        top_links=[(url, n) for url, n in top],
    )


def left_after(connection: Connection, send_id: int, created_at: datetime) -> list[Any]:
    """Conditions on the consent log for "left because of this send": an unsubscribe by
    someone the send reached, from its start until the next send began."""
    following = connection.execute(
        select(func.min(sends.c.created_at)).where(sends.c.id > send_id)
    ).scalar()
    where = [
        subscriber_events.c.new_status == "unsubscribed",
        subscriber_events.c.at >= created_at,
        subscriber_events.c.subscriber_id.in_(
            select(deliveries.c.subscriber_id).where(
                deliveries.c.send_id == send_id, deliveries.c.status == "sent"
            )
        ),
    ]
    if following is not None:
        where.append(subscriber_events.c.at < following)
    return where


def recent_stats(engine: Engine, limit: int = 20) -> list[SendStats]:
    return [send_stats(engine, record.id) for record in Ledger(engine).list(limit)]
