"""CSV import: streamed in chunks, one transaction, never reactivating a suppressed address.

Memory stays constant whatever the file size: rows are read and validated a chunk at a time
and staged in a temporary file (pickled chunks of our own `Candidate`s), then written a
chunk at a time in one transaction, so the database is locked only for the writing.
Duplicates across chunks are recognised by `last_import_id` (the import run that last
touched a row) instead of a set of every address seen.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from newsletter.domain.csv_cells import restored
from newsletter.domain.subscriber import (
    SUPPRESSED,
    InvalidAddress,
    Source,
    Status,
    clean_name,
    clean_topics,
    erased_hash,
    mask_email,
    normalize_address,
)
from newsletter.errors import InputError
from newsletter.infra.db.bulk import bulk_insert
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import imports, subscriber_events, subscribers
from newsletter.infra.files import display_path, first_invalid_utf8
from newsletter.services.subscribers import erasure_salt

CHUNK = 2000
IMPORT_LOCK = 720_514_002  # PostgreSQL advisory lock: imports run one at a time
SUBSCRIBER_COLUMNS = (
    "email",
    "email_key",
    "name",
    "status",
    "topics",
    "attributes",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "confirm_sent_count",
    "last_import_id",
)
EVENT_COLUMNS = ("subscriber_id", "at", "kind", "old_status", "new_status", "source", "detail")
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


@dataclass
class ImportReport:
    file: str
    dry_run: bool
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    invalid: int = 0
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def note(self, problem: Problem, limit: int) -> None:
        if len(self.problems) < limit:
            self.problems.append(problem)

    def to_dict(self, *, masked: bool = False) -> dict[str, Any]:
        """`masked` for the copy kept in the database: an erased address must not linger."""
        data = asdict(self)
        data["skipped_reasons"] = dict(self.skipped_reasons)
        if masked:
            for problem in data["problems"]:
                problem["email"] = mask_email(problem["email"]) if "@" in problem["email"] else ""
        return data


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


class _CountingReader(io.RawIOBase):
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


def import_csv(
    engine: Engine,
    path: Path,
    *,
    status: Status = Status.ACTIVE,
    dry_run: bool = False,
    problem_limit: int = 20,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV file in one transaction; a dry run does everything and rolls back."""
    if status not in (Status.ACTIVE, Status.PENDING):
        raise InputError("imported subscribers are active or pending")
    shown = display_path(path)
    report = ImportReport(file=shown, dry_run=dry_run)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", shown) from None
    with raw, tempfile.TemporaryFile() as staged:
        # First read and check the whole file, staging the good rows on disk: the
        # database is locked (on SQLite, for every writer) only while they are written.
        stream = io.TextIOWrapper(
            io.BufferedReader(_CountingReader(raw, progress), 1 << 16),
            encoding="utf-8-sig",
            newline="",
        )
        chunks = 0
        try:
            for chunk in _chunks(_candidates(stream, shown, status, report, problem_limit)):
                pickle.dump(chunk, staged, protocol=pickle.HIGHEST_PROTOCOL)
                chunks += 1
        except UnicodeDecodeError:
            line, byte = first_invalid_utf8(path) or (None, 0)
            raise InputError(
                f"not valid UTF-8 (byte 0x{byte:02x}); save the file as UTF-8", shown, line
            ) from None
        staged.seek(0)
        _write(engine, staged, chunks, report, problem_limit, shown, dry_run)
    return report


def _write(
    engine: Engine,
    staged: IO[bytes],
    chunks: int,
    report: ImportReport,
    limit: int,
    shown: str,
    dry_run: bool,
) -> None:
    """Apply the staged rows in one transaction (rolled back for a dry run)."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            if connection.dialect.name == "postgresql":  # one import at a time
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": IMPORT_LOCK})
            run_id = connection.execute(
                insert(imports).values(file=shown, started_at=now()).returning(imports.c.id)
            ).scalar_one()
            salt = erasure_salt(connection)
            for _ in range(chunks):
                _apply(connection, pickle.load(staged), run_id, salt, report, limit, shown)
            connection.execute(
                update(imports)
                .where(imports.c.id == run_id)
                .values(finished_at=now(), report=report.to_dict(masked=True))
            )
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()


def _chunks(candidates: Iterator[Candidate]) -> Iterator[list[Candidate]]:
    chunk: list[Candidate] = []
    for candidate in candidates:
        chunk.append(candidate)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _candidates(
    text: io.TextIOWrapper, shown: str, status: Status, report: ImportReport, limit: int
) -> Iterator[Candidate]:
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


def _skip(report: ImportReport, candidate: Candidate, reason: str, limit: int) -> None:
    report.skipped += 1
    report.skipped_reasons[reason] += 1
    report.note(Problem(candidate.row, candidate.line, candidate.email, reason), limit)


def _apply(
    connection: Connection,
    chunk: list[Candidate],
    run_id: int,
    salt: str,
    report: ImportReport,
    limit: int,
    shown: str,
) -> None:
    unique: dict[str, Candidate] = {}
    for candidate in chunk:
        if candidate.key in unique:
            _skip(report, candidate, "duplicate of an earlier row", limit)
        else:
            unique[candidate.key] = candidate
    existing = {
        row.email_key: row
        for row in connection.execute(
            select(subscribers).where(subscribers.c.email_key.in_(list(unique)))
        )
    }
    fresh = [c for key, c in unique.items() if key not in existing]
    hashes = {erased_hash(c.key, salt): c for c in fresh}
    erased = set(
        connection.execute(
            select(subscribers.c.erased_hash).where(subscribers.c.erased_hash.in_(list(hashes)))
        ).scalars()
    )
    at = now()
    source = f"import {shown}"
    new_rows: list[dict[str, Any]] = []
    for digest, candidate in hashes.items():
        if digest in erased:
            _skip(report, candidate, "erased address (suppressed)", limit)
            continue
        new_rows.append(
            (
                candidate.email,
                candidate.key,
                candidate.name,
                str(candidate.status),
                candidate.topics,
                candidate.attributes,
                at,
                at if candidate.status == Status.ACTIVE else None,
                at if candidate.status in SUPPRESSED else None,
                0,
                run_id,
            )
        )
    events: list[tuple[Any, ...]] = []
    if new_rows:
        # One executemany, then one query for the new ids (RETURNING with ordered
        # parameters would make SQLite fall back to one statement per row).
        bulk_insert(connection, subscribers, SUBSCRIBER_COLUMNS, new_rows)
        inserted = connection.execute(
            select(subscribers.c.id, subscribers.c.status).where(
                subscribers.c.email_key.in_([row[1] for row in new_rows])
            )
        )
        for row in inserted:
            events.append(_event(row.id, None, row.status, at, source))
        report.added += len(new_rows)

    changed: list[dict[str, Any]] = []
    touched: list[dict[str, Any]] = []
    status_changes: list[tuple[int, Status, Status]] = []
    for key, row in existing.items():
        candidate = unique[key]
        if row.last_import_id == run_id:
            _skip(report, candidate, "duplicate of an earlier row", limit)
            continue
        current = Status(row.status)
        if current in SUPPRESSED:
            _skip(report, candidate, f"{current} (never reactivated by an import)", limit)
            touched.append({"_id": row.id})
            continue
        target = current
        if candidate.status in SUPPRESSED or (
            current == Status.PENDING and candidate.status == Status.ACTIVE
        ):
            target = candidate.status
        name = candidate.name or row.name
        topics = sorted(set(row.topics or []) | set(candidate.topics))
        attributes = {**(row.attributes or {}), **candidate.attributes}
        if (target, name, topics, attributes) == (current, row.name, row.topics, row.attributes):
            report.unchanged += 1
            touched.append({"_id": row.id})
            continue
        report.updated += 1
        changed.append(
            {
                "_id": row.id,
                "_old": row.status,
                "status": str(target),
                "name": name,
                "topics": topics,
                "attributes": attributes,
                "confirmed_at": at
                if target == Status.ACTIVE and current != target
                else row.confirmed_at,
                "unsubscribed_at": at if target in SUPPRESSED else row.unsubscribed_at,
                "last_import_id": run_id,
            }
        )
        if target != current:
            status_changes.append((row.id, current, target))
    if changed:
        # Guarded by the status read above: an unsubscribe that lands meanwhile wins.
        guarded = update(subscribers).where(
            subscribers.c.id == bindparam("_id"), subscribers.c.status == bindparam("_old")
        )
        connection.execute(
            guarded.values({k: bindparam(k) for k in changed[0] if k not in ("_id", "_old")}),
            changed,
        )
        for subscriber_id, old, new in status_changes:
            still = connection.execute(
                select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            ).scalar()
            if still == str(new):
                events.append(_event(subscriber_id, old, new, at, source))
    if touched:
        connection.execute(
            update(subscribers)
            .where(subscribers.c.id == bindparam("_id"))
            .values(last_import_id=run_id),
            touched,
        )
    bulk_insert(connection, subscriber_events, EVENT_COLUMNS, events)


def _event(
    subscriber_id: int, old: str | Status | None, new: str | Status, at: Any, detail: str
) -> tuple[Any, ...]:
    kind = "created" if old is None else "status"
    return (subscriber_id, at, kind, old and str(old), str(new), str(Source.IMPORT), detail)
