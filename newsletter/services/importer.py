"""CSV import: streamed in chunks, one transaction, never reactivating a suppressed address.

Memory stays constant whatever the file size: rows are read and validated a chunk at a time
and staged in a temporary file (pickled chunks of our own `Candidate`s), then written a
chunk at a time in one transaction, so the database is locked only for the writing.
Duplicates across chunks are recognised by `last_import_id` (the import run that last
touched a row) instead of a set of every address seen. Reading and checking the rows is in
csv_rows.py; this module holds the run, its report and the writing.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from newsletter.domain.subscriber import SUPPRESSED, Source, Status, erased_hash, mask_email
from newsletter.errors import InputError
from newsletter.infra.db.bulk import bulk_insert
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import imports, subscriber_events, subscribers
from newsletter.infra.files import display_path, first_invalid_utf8
from newsletter.services.csv_rows import Candidate, CountingReader, Problem, read_candidates
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
            io.BufferedReader(CountingReader(raw, progress), 1 << 16),
            encoding="utf-8-sig",
            newline="",
        )
        chunks = 0
        try:
            for chunk in _chunks(read_candidates(stream, shown, status, report, problem_limit)):
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


def _skip(report: ImportReport, candidate: Candidate, reason: str, limit: int) -> None:
    report.skipped += 1
    report.skipped_reasons[reason] += 1
    report.note(Problem(candidate.row, candidate.line, candidate.email, reason), limit)


def _any_erased(connection: Connection) -> bool:
    """Whether anyone was ever erased: if not, no address of a chunk needs its salted hash
    (a tenth of the write path), and the common case skips both hashing and the query."""
    query = select(subscribers.c.id).where(subscribers.c.erased_hash.is_not(None)).limit(1)
    return connection.execute(query).first() is not None


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
    if fresh and _any_erased(connection):
        hashes = {erased_hash(c.key, salt): c for c in fresh}
        erased = set(
            connection.execute(
                select(subscribers.c.erased_hash).where(subscribers.c.erased_hash.in_(list(hashes)))
            ).scalars()
        )
        fresh = []
        for digest, candidate in hashes.items():
            if digest in erased:
                _skip(report, candidate, "erased address (suppressed)", limit)
            else:
                fresh.append(candidate)
    at = now()
    source = f"import {shown}"
    new_rows: list[dict[str, Any]] = []
    for candidate in fresh:
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
