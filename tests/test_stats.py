"""Statistics of a send from a known set of outcomes and provider events."""

from __future__ import annotations

import json

from newsletter.domain.subscriber import Source
from newsletter.services.feedback import ingest
from newsletter.services.subscribers import Context

ISSUE = "2026-12-welcome"


def test_stats_from_a_known_event_set(sending, cli):
    ids = sending.add(10)
    result = cli("send", ISSUE, "--yes", "--json")
    send_id = json.loads(result.out)["id"]

    def event(kind: str, sid: int, n: int, **extra) -> dict:
        return {
            "event": kind,
            "email": f"reader{sid - ids[0]}@example.com",
            "sg_event_id": f"{kind}-{sid}-{n}",
            "timestamp": 1,
            "subscriber_id": str(sid),
            "stream": f"send-{send_id}",
            **extra,
        }

    events = [event("delivered", sid, 0) for sid in ids[:8]]
    events += [
        event(
            "bounce", ids[8], 0, type="bounce", reason="550 5.1.1 The email account does not exist"
        ),
        event("bounce", ids[9], 0, type="blocked", reason="550 5.7.1 Refused by policy"),
    ]
    events += [event("open", sid, 0) for sid in ids[:4]] + [event("open", ids[0], 1)]
    events += [event("open", ids[5], 2, sg_machine_open=True)]
    events += [event("click", ids[0], 0, url="https://example.org/a")]
    events += [event("click", ids[1], 0, url="https://example.org/a")]
    events += [event("click", ids[1], 1, url="https://example.org/b")]
    events += [event("spamreport", ids[7], 0)]
    ingest(sending.engine, events)
    sending.store.unsubscribe(ids[6], Context(Source.ONE_CLICK))

    stats = json.loads(cli("stats", str(send_id), "--json").out)
    assert (stats["recipients"], stats["sent"], stats["delivered"]) == (10, 10, 8)
    assert stats["delivered_reported"] is True
    assert (stats["bounced"], stats["complained"]) == (1, 1)
    assert (stats["opens"], stats["machine_opens"], stats["clicks"]) == (4, 1, 2)
    assert stats["unsubscribed"] == {"one-click": 1}
    assert stats["rates"]["opens"] == 0.5 and stats["rates"]["clicks"] == 0.25
    assert stats["top_links"][0] == ["https://example.org/a", 2]
    table = cli("stats")
    assert table.code == 0 and ISSUE in table.out and "4 50%" in table.out
    one = cli("stats", str(send_id))
    assert "+1 machine opens" in one.out and "2 x https://example.org/a" in one.out
