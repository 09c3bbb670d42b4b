"""CSV export of the list: the columns the importer reads back (a `status` column keeps
opt-outs across a round trip), streamed, in constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from newsletter.domain.csv_cells import neutralized
from newsletter.domain.subscriber import SubscriberRecord
from newsletter.infra.files import open_atomically

EXPORT_COLUMNS = [
    "email",
    "name",
    "status",
    "topics",
    "attributes",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
]


def write_csv(stream: TextIO, records: Iterable[SubscriberRecord], *, raw: bool = False) -> int:
    """Write the header and one row per subscriber; returns how many. Unless `raw`,
    every cell that a spreadsheet would run as a formula is neutralized."""
    writer = csv.writer(stream)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for record in records:
        cells = [
            record.email,
            record.name or "",
            record.status,
            ";".join(record.topics),
            json.dumps(record.attributes, ensure_ascii=False) if record.attributes else "",
            *(
                value.isoformat() if value else ""
                for value in (record.created_at, record.confirmed_at, record.unsubscribed_at)
            ),
        ]
        writer.writerow(cells if raw else [neutralized(cell or "") for cell in cells])
        count += 1
    return count


def export_to_file(records: Iterable[SubscriberRecord], path: Path, *, raw: bool = False) -> int:
    with open_atomically(path) as stream:
        return write_csv(stream, records, raw=raw)
