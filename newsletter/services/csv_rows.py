"""Reading an import's CSV: the header mapped to our columns, each row checked into a
`Candidate` or noted as a `Problem`.

Kept apart from the writing (importer.py) because it needs no database: a file is read and
checked whole before the database is locked. `_candidate` runs once per row of files of a
million rows (bench/import.py): keep new checks in it, not in another layer of calls.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from newsletter.domain.csv_cells import restored
from newsletter.domain.subscriber import (
    SUPPRESSED,
    InvalidAddress,
    Status,
    clean_name,
    clean_topics,
    normalize_address,
)
from newsletter.errors import InputError

if TYPE_CHECKING:
    from newsletter.services.importer import ImportReport

EMAIL_COLUMNS = {"email", "e-mail", "email address", "e-mail address", "email_address", "mail"}
NAME_COLUMNS = {"name", "full name", "full_name", "fullname"}
FIRST_COLUMNS = {"first_name", "first name", "firstname", "given name", "given_name"}
LAST_COLUMNS = {"last_name", "last name", "lastname", "surname", "family name", "family_name"}
TOPIC_COLUMNS = {"topics", "tags", "topic"}
STATUS_COLUMNS = {"status"}
ATTRIBUTES_COLUMN = "attributes"
# Columns of our own export that describe the list, not the person.
IGNORED_COLUMNS = {"id", "created_at", "confirmed_at", "unsubscribed_at", "paused_until"}
TOPIC_SPLIT = re.compile(r"[;,|\s]+")
MAX_COLUMNS = 1000
MAX_ATTRIBUTES_BYTES = 10_000


class CsvFormatError(InputError):
    pass


@dataclass
class Problem:
    row: int  # data row number, the header being row 1
    line: int  # line in the file where the row starts
    email: str
    reason: str


@dataclass(frozen=True)
class Columns:
    email: int
    name: int | None
    first: int | None
    last: int | None
    topics: int | None
    status: int | None
    attributes: int | None
    extra: tuple[tuple[int, str], ...]

    @classmethod
    def from_header(cls, header: list[str], file: str) -> Columns:
        lowered = [h.strip().lower() for h in header]

        def find(names: set[str]) -> int | None:
            return next((i for i, h in enumerate(lowered) if h in names), None)

        email = find(EMAIL_COLUMNS)
        if email is None:
            shown = ", ".join(h for h in header if h.strip()) or "none"
            raise CsvFormatError(f"no email column in the header (columns: {shown})", file, 1)
        known = EMAIL_COLUMNS | NAME_COLUMNS | FIRST_COLUMNS | LAST_COLUMNS | TOPIC_COLUMNS
        known |= STATUS_COLUMNS | IGNORED_COLUMNS | {ATTRIBUTES_COLUMN}
        return cls(
            email=email,
            name=find(NAME_COLUMNS),
            first=find(FIRST_COLUMNS),
            last=find(LAST_COLUMNS),
            topics=find(TOPIC_COLUMNS),
            status=find(STATUS_COLUMNS),
            attributes=find({ATTRIBUTES_COLUMN}),
            extra=tuple(
                (i, header[i].strip()) for i, h in enumerate(lowered) if h and h not in known
            ),
        )


class Candidate(NamedTuple):
    """A checked row. A named tuple: a million of them are pickled to the staging file."""

    row: int
    line: int
    email: str
    key: str
    name: str | None
    topics: list[str]
    attributes: dict[str, Any]
    status: Status


class CountingReader(io.RawIOBase):
    """Counts bytes read so a progress bar can follow a streamed file."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.progress = progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        if self.progress:
            self.progress(len(data))
        return len(data)


def read_candidates(
    text: io.TextIOWrapper, shown: str, status: Status, report: ImportReport, limit: int
) -> Iterator[Candidate]:
    """A bad row is counted and noted in `report`, not raised: it must not stop the import."""
    reader = csv.reader(text)
    line = 1
    try:
        header = next(reader, None)
        if header is None:
            raise CsvFormatError("the file is empty; expected a header row", shown, 1)
        if len(header) > MAX_COLUMNS:
            raise CsvFormatError(
                f"the header has {len(header)} columns; at most {MAX_COLUMNS}", shown, 1
            )
        columns = Columns.from_header(header, shown)
        row_number = 1
        line = reader.line_num + 1
        for fields in reader:
            row_number += 1
            start, line = line, reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue
            report.rows += 1
            if len(fields) > len(header) + 10:
                report.invalid += 1
                reason = f"{len(fields)} fields for {len(header)} columns"
                report.note(
                    Problem(row_number, start, _field(fields, columns.email), reason), limit
                )
                continue
            candidate = _candidate(fields, columns, row_number, start, status, report, limit)
            if candidate is not None:
                yield candidate
    except csv.Error as exc:
        raise CsvFormatError(f"CSV error: {exc}", shown, line) from None


def _field(fields: list[str], index: int | None) -> str:
    value = fields[index].strip() if index is not None and index < len(fields) else ""
    return restored(value)  # as it was before an export neutralized it


def _json_may_exceed(attributes: dict[str, Any]) -> bool:
    """Whether the JSON of these attributes can pass the limit: a character takes at most
    12 bytes (a surrogate pair of \\uXXXX), a pair at most 6 more of punctuation. Saves
    encoding every row twice."""
    length = sum(len(str(k)) + len(str(v)) for k, v in attributes.items())
    return 12 * length + 6 * len(attributes) + 2 > MAX_ATTRIBUTES_BYTES


def _candidate(
    fields: list[str],
    columns: Columns,
    row: int,
    line: int,
    default_status: Status,
    report: ImportReport,
    limit: int,
) -> Candidate | None:
    raw = _field(fields, columns.email)
    try:
        address = normalize_address(raw)
    except InvalidAddress as exc:
        report.invalid += 1
        report.note(Problem(row, line, raw, f"invalid address: {exc}"), limit)
        return None
    if any("\x00" in f for f in fields):
        report.invalid += 1
        report.note(Problem(row, line, raw, "contains a NUL byte"), limit)
        return None
    try:
        name = clean_name(
            _field(fields, columns.name)
            or " ".join(
                p for p in (_field(fields, columns.first), _field(fields, columns.last)) if p
            )
        )
        topics = clean_topics(TOPIC_SPLIT.split(_field(fields, columns.topics)))
    except ValueError as exc:
        report.invalid += 1
        report.note(Problem(row, line, raw, str(exc)), limit)
        return None
    attributes: dict[str, Any] = {}
    blob = _field(fields, columns.attributes)
    if blob:
        try:
            parsed = json.loads(blob)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            report.invalid += 1
            report.note(Problem(row, line, raw, "attributes is not a JSON object"), limit)
            return None
        attributes.update(parsed)
    for index, label in columns.extra:
        value = _field(fields, index)
        if value:
            attributes[label] = value
    if (
        attributes
        and _json_may_exceed(attributes)
        and len(json.dumps(attributes)) > MAX_ATTRIBUTES_BYTES
    ):
        report.invalid += 1
        report.note(Problem(row, line, raw, f"attributes over {MAX_ATTRIBUTES_BYTES} bytes"), limit)
        return None
    status = default_status
    row_status = _field(fields, columns.status).lower()
    if row_status in {str(s) for s in SUPPRESSED}:
        status = Status(row_status)  # an opt-out recorded elsewhere is honoured
    elif row_status == Status.PENDING:
        status = Status.PENDING  # never confirmed: an import must not confirm it for them
    return Candidate(
        row=row,
        line=line,
        email=address.email,
        key=address.key,
        name=name,
        topics=topics,
        attributes=attributes,
        status=status,
    )
