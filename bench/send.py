"""Benchmark: the whole sending pipeline against bare ceilings, measured in one run.

- smtp: ledger + personalization + MIME + SMTP into Postfix's smtp-sink, against two bare
  loops over as many connections, each sending the same pre-built messages: smtplib's
  sendmail() (the target: at least 70% of its rate), and the raw MAIL/RCPT/DATA exchange of
  pre-dot-stuffed bytes the way the transport speaks it (a stricter ceiling, about twice
  sendmail's rate: sendmail() runs a regex over every message to dot-stuff it; reported,
  no target).
- sendgrid: recipients per second into the local SendGrid stand-in (tests/), against the
  bare client posting pre-built 1,000-recipient payloads. Target: 70% and 20,000/s.
- memory: peak RSS of a 1,000,000-recipient send into the stand-in against a 10,000 one,
  each in a fresh process. Target: at most 1.3 times.

Run on purpose: `python bench/send.py [smtp|sendgrid|memory ...]`, never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from newsletter.domain.message import MessageTemplate, message_id  # noqa: E402
from newsletter.domain.personalize import Recipient  # noqa: E402
from newsletter.domain.tokens import Signer  # noqa: E402
from newsletter.infra.db.bulk import bulk_insert  # noqa: E402
from newsletter.infra.db.engine import connect  # noqa: E402
from newsletter.infra.db.schema import subscribers  # noqa: E402
from newsletter.infra.transports.factory import sender_of  # noqa: E402
from newsletter.infra.transports.sendgrid import SendgridTransport  # noqa: E402
from newsletter.infra.transports.smtp import SmtpTransport  # noqa: E402
from newsletter.infra.workspace import Workspace, open_workspace  # noqa: E402
from newsletter.services.build import Builder  # noqa: E402
from newsletter.services.dispatch import Dispatcher, SendOptions  # noqa: E402
from newsletter.services.importer import SUBSCRIBER_COLUMNS  # noqa: E402
from newsletter.services.ledger import Ledger  # noqa: E402
from newsletter.services.links import list_identity  # noqa: E402

KEY = "bench-signing-key-0123456789abcdef"
API_KEY = "SG.bench"
ISSUE = "2026-12-welcome"
console = Console()


def populate(url: str, count: int) -> None:
    """Active subscribers, inserted in bulk (the import path is benchmarked elsewhere)."""
    now = datetime.now(UTC)
    columns = SUBSCRIBER_COLUMNS[:-1]  # the importer's, without last_import_id
    with connect(url) as engine, engine.begin() as connection:
        for start in range(0, count, 20_000):
            rows = [
                (
                    f"reader{i}@example.com",
                    f"reader{i}@example.com",
                    f"Reader {i}",
                    "active",
                    [],
                    {},
                    now,
                    now,
                    None,
                    0,
                )
                for i in range(start, min(count, start + 20_000))
            ]
            bulk_insert(connection, subscribers, columns, rows)


def workspace_in(folder: Path, url: str, **env: str) -> Workspace:
    os.environ["NEWSLETTER_SECRET_KEY"] = KEY
    os.environ["NEWSLETTER_DATABASE_URL"] = url
    os.environ["NEWSLETTER_STATE_DIR"] = str(folder / "state")
    os.environ.update(env)
    return open_workspace(ROOT)


def run_send(workspace: Workspace, url: str, transport: object, options: SendOptions) -> float:
    """Create a send of the whole list and run it; returns seconds spent sending."""
    build = Builder(workspace).build(ISSUE)
    with connect(url) as engine:
        ledger = Ledger(engine)
        record = ledger.create_send(build.rendered, transport.name, again=True)  # type: ignore[attr-defined]
        dispatcher = Dispatcher(
            ledger,
            transport,
            list_identity(workspace.settings),  # type: ignore[arg-type]
            Signer([KEY]),
            options,
        )
        started = time.perf_counter()
        final = dispatcher.run(record.id)
        elapsed = time.perf_counter() - started
    if final.counts["sent"] != final.total:
        raise SystemExit(f"send incomplete: {final.counts}")
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- smtp ----------------------------------------------------------------------------------


def bench_smtp(count: int, concurrency: int) -> list[tuple[str, str, str, str]]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        raise SystemExit(
            "smtp-sink not found: apt-get install postfix (it ships /usr/sbin/smtp-sink)"
        )
    port = free_port()
    process = subprocess.Popen(
        [sink, "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    try:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            workspace = workspace_in(
                Path(folder),
                url,
                NEWSLETTER_SMTP__HOST="127.0.0.1",
                NEWSLETTER_SMTP__PORT=str(port),
                NEWSLETTER_SMTP__SECURITY="none",
            )
            populate(url, count)
            build = Builder(workspace).build(ISSUE)
            sender = sender_of(workspace)
            size = 0
            prebuilt = []
            stuffed = []  # the same messages, dot-stuffed, for the raw exchange
            template = MessageTemplate(build.rendered, sender, date=datetime.now(UTC))
            for i in range(count):
                recipient = Recipient(
                    f"reader{i}@example.com",
                    f"Reader {i}",
                    f"{workspace.settings.base_url}/u/x{i}",
                    f"{workspace.settings.base_url}/preferences/x{i}",
                    key=f"sub-{i}",
                )
                msgid = message_id("bare", recipient.key, sender.domain)
                data = template.render(recipient, msgid)
                prebuilt.append((recipient.email, data))
                stuffed.append((recipient.email, template.render(recipient, msgid, stuffed=True)))
                size += len(data)
            bare = _bare_smtp(port, prebuilt, concurrency, sender.address)
            raw = _raw_smtp(port, stuffed, concurrency, sender.address)
            del prebuilt, stuffed  # some hundreds of MB at large counts: not kept for the send
            settings = workspace.settings.smtp
            pipeline = count / run_send(
                workspace,
                url,
                SmtpTransport(settings, sender),
                SendOptions(batch_size=100, concurrency=concurrency),
            )
    finally:
        process.terminate()
        process.wait()
    ratio = pipeline / bare
    raw_ratio = pipeline / raw
    kb = size / count / 1024
    shape = f"{concurrency} connections, {kb:.0f} KB messages"
    return [
        (f"smtp sendmail ceiling: smtplib sendmail() ({shape})", f"{bare:,.0f} msg/s", "", ""),
        (
            f"smtp raw ceiling: pre-stuffed MAIL/RCPT/DATA ({shape})",
            f"{raw:,.0f} msg/s",
            "",
            "",
        ),
        ("smtp pipeline (ledger + personalize + MIME + SMTP)", f"{pipeline:,.0f} msg/s", "", ""),
        (
            "smtp pipeline / sendmail ceiling",
            f"{ratio:.0%}",
            ">= 70% of sendmail",
            "yes" if ratio >= 0.7 else "NO",
        ),
        ("smtp pipeline / raw ceiling", f"{raw_ratio:.0%}", "", ""),
    ]


def _in_threads(
    worker: Callable[[list[tuple[str, bytes]]], None],
    items: list[tuple[str, bytes]],
    concurrency: int,
) -> float:
    """Messages per second of `worker` over `items` dealt out to `concurrency` threads.
    A worker's error is raised here: a thread that died early would inflate the rate."""
    errors: list[BaseException] = []

    def run(part: list[tuple[str, bytes]]) -> None:
        try:
            worker(part)
        except BaseException as exc:  # SystemExit too: threading drops it silently
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(items[i::concurrency],)) for i in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(items) / elapsed


def _bare_smtp(
    port: int, prebuilt: list[tuple[str, bytes]], concurrency: int, sender: str
) -> float:
    """The sendmail ceiling: smtplib's own sendmail() of pre-built messages, one connection
    per thread (it dot-stuffs every message with a regex as it goes)."""

    def worker(items: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as connection:
            for address, data in items:
                connection.sendmail(sender, [address], data)

    return _in_threads(worker, prebuilt, concurrency)


def _raw_smtp(port: int, stuffed: list[tuple[str, bytes]], concurrency: int, sender: str) -> float:
    """The raw ceiling: the exchange SmtpTransport speaks (MAIL, RCPT, DATA by hand, then the
    pre-dot-stuffed message and its final dot), without ledger, tokens or personalization, so
    the pipeline's cost above the wire is what separates the two."""

    def expect(reply: tuple[int, bytes], code: int, step: str) -> None:
        if reply[0] != code:  # a refused step would make the ceiling a count of refusals
            raise RuntimeError(f"raw SMTP ceiling: {step} answered {reply[0]} {reply[1]!r}")

    def worker(items: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as connection:
            connection.ehlo_or_helo_if_needed()
            for address, data in items:
                connection.putcmd("mail", f"FROM:<{sender}>")
                expect(connection.getreply(), 250, "MAIL")
                connection.putcmd("rcpt", f"TO:<{address}>")
                expect(connection.getreply(), 250, "RCPT")
                connection.putcmd("data")
                expect(connection.getreply(), 354, "DATA")
                connection.send(data + b".\r\n")
                expect(connection.getreply(), 250, "end of data")

    return _in_threads(worker, stuffed, concurrency)


# -- sendgrid ------------------------------------------------------------------------------


class StandInProcess:
    """The stand-in in a process of its own: a provider does not share our interpreter lock,
    and in one process the two would take turns on it. Stops when its stdin closes."""

    def __enter__(self) -> StandInProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "sendgrid_standin.py"), API_KEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.process.kill()
            raise SystemExit("the SendGrid stand-in did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def bench_sendgrid(count: int, concurrency: int, workers: int) -> list[tuple[str, str, str, str]]:
    with StandInProcess() as standin, tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        workspace = workspace_in(Path(folder), url, NEWSLETTER_SENDGRID__HOST=standin.url)
        populate(url, count)
        transport = SendgridTransport(workspace.settings.sendgrid, sender_of(workspace), API_KEY)
        bare = _bare_sendgrid(workspace, transport, count, concurrency)
        one = count / run_send(
            workspace,
            url,
            transport,
            SendOptions(batch_size=1000, concurrency=concurrency),
        )
        several = count / _send_in_processes(workspace, url, workers, concurrency)
    rows = [
        (
            f"sendgrid bare client, pre-built 1,000-recipient bodies ({concurrency} threads)",
            f"{bare:,.0f} rcpt/s",
            "",
            "",
        )
    ]
    for label, rate in (
        (f"1 process x {concurrency} threads", one),
        (f"{workers} processes x {concurrency} threads (send --resume)", several),
    ):
        ratio = rate / bare
        rows += [
            (
                f"sendgrid pipeline, {label}",
                f"{rate:,.0f} rcpt/s",
                ">= 20,000/s",
                "yes" if rate >= 20_000 else "NO",
            ),
            ("  pipeline / bare", f"{ratio:.0%}", ">= 70%", "yes" if ratio >= 0.7 else "NO"),
        ]
    return rows


def _bare_sendgrid(
    workspace: Workspace, transport: SendgridTransport, count: int, concurrency: int
) -> float:
    """The ceiling: the client posting one body, built and encoded beforehand, again and again
    (no ledger, no tokens, no personalization, no encoding)."""
    from newsletter.domain.personalize import substitution_form

    build = Builder(workspace).build(ISSUE)
    form = substitution_form(build.rendered)
    base = workspace.settings.base_url
    chunk = [
        Recipient(
            f"reader{i}@example.com",
            f"Reader {i}",
            f"{base}/u/t{i}",
            f"{base}/preferences/t{i}",
            key=f"sub-{i}",
            subscriber_id=i,
        )
        for i in range(1000)
    ]
    body = transport.request_body(build.rendered, form, chunk, "bare")
    requests = max(1, count // 1000)
    client = transport.api.client

    def worker(n: int) -> None:
        for _ in range(n):
            client.mail.send.post(request_body=body)

    shares = [
        requests // concurrency + (1 if i < requests % concurrency else 0)
        for i in range(concurrency)
    ]
    threads = [threading.Thread(target=worker, args=(n,)) for n in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return requests * 1000 / (time.perf_counter() - started)


def _send_in_processes(workspace: Workspace, url: str, workers: int, concurrency: int) -> float:
    """A new send of the whole list, worked by `workers` processes of `newsletter send
    --resume` (the way a send scales past one interpreter lock); seconds from their start,
    interpreter start-up included, until the last one exits."""
    build = Builder(workspace).build(ISSUE)
    with connect(url) as engine:
        record = Ledger(engine).create_send(build.rendered, "sendgrid", again=True)
    command = [sys.executable, "-m", "newsletter", "send", "--resume", str(record.id)]
    command += ["--json", "--concurrency", str(concurrency)]
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY}
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    codes = [process.wait() for process in processes]
    elapsed = time.perf_counter() - started
    with connect(url) as engine:
        final = Ledger(engine).get(record.id)
    if codes != [0] * workers or final.counts["sent"] != final.total:
        raise SystemExit(f"send in processes incomplete: exit codes {codes}, {final.counts}")
    return elapsed


# -- memory --------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's own peak: VmHWM. ru_maxrss would do, except that Linux carries it over
    exec from the parent, so a child of a big benchmark process would report the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_send(count: int, host: str) -> None:
    """In a fresh process: populate and send `count` recipients; print peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        workspace = workspace_in(Path(folder), url, NEWSLETTER_SENDGRID__HOST=host)
        populate(url, count)
        baseline = peak_rss_mb()
        transport = SendgridTransport(workspace.settings.sendgrid, sender_of(workspace), API_KEY)
        seconds = run_send(workspace, url, transport, SendOptions(batch_size=1000, concurrency=2))
        peak = peak_rss_mb()
    print(json.dumps({"peak_mb": peak, "before_send_mb": baseline, "seconds": seconds}))


def bench_memory(small: int, large: int) -> list[tuple[str, str, str, str]]:
    results = {}
    with StandInProcess() as standin:
        for count in (small, large):
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(count), standin.url],
                capture_output=True,
                text=True,
                check=True,
            )
            results[count] = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = results[large]["peak_mb"] / results[small]["peak_mb"]
    return [
        (f"peak RSS, {small:,}-recipient send", f"{results[small]['peak_mb']:.0f} MB", "", ""),
        (
            f"peak RSS, {large:,}-recipient send ({results[large]['seconds']:.0f} s)",
            f"{results[large]['peak_mb']:.0f} MB",
            "",
            "",
        ),
        ("large / small", f"{ratio:.2f}x", "<= 1.3x", "yes" if ratio <= 1.3 else "NO"),
    ]


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_send(int(sys.argv[2]), sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parts", nargs="*", default=["smtp", "sendgrid", "memory"])
    parser.add_argument("--smtp-messages", type=int, default=5000)
    parser.add_argument("--sendgrid-recipients", type=int, default=100_000)
    parser.add_argument("--memory-small", type=int, default=10_000)
    parser.add_argument("--memory-large", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes for the SendGrid send")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    if "smtp" in args.parts:
        rows += bench_smtp(args.smtp_messages, args.concurrency)
    if "sendgrid" in args.parts:
        rows += bench_sendgrid(args.sendgrid_recipients, args.concurrency, args.workers)
    if "memory" in args.parts:
        rows += bench_memory(args.memory_small, args.memory_large)
    table = Table(title="send benchmark")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0 if all(row[3] != "NO" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
