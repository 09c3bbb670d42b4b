"""Bulk inserts through the driver's executemany, for imports of millions of rows.

SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, so values
are converted here column by column, the way SQLAlchemy would store them, and handed to the
driver in one executemany.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Table


def _sqlite_datetime() -> Callable[[Any], Any]:
    memo: dict[datetime, str] = {}  # an import stamps whole chunks with one time

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if value not in memo:
            plain = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
            # SQLAlchemy's SQLite DATETIME storage format: naive UTC with microseconds.
            memo[value] = plain.strftime("%Y-%m-%d %H:%M:%S.%f")
        return memo[value]

    return convert


# One encoder for every row: json.dumps with a non-default argument builds a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _json(value: Any) -> Any:
    return None if value is None else _ENCODE(value)


def bulk_insert(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT rows (tuples in `columns` order) with one executemany."""
    if not rows:
        return
    dialect = connection.dialect
    sqlite = dialect.name == "sqlite"
    values: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for index, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, JSON):
            values[index] = list(map(_json, values[index]))
        elif sqlite and isinstance(kind, DateTime):
            values[index] = list(map(_sqlite_datetime(), values[index]))
    prepare = dialect.identifier_preparer
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        prepare.format_table(table),
        ", ".join(prepare.quote(c) for c in columns),
        ", ".join("?" if sqlite else "%s" for _ in columns),
    )
    connection.exec_driver_sql(sql, list(zip(*values, strict=True)))
