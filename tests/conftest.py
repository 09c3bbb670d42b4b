from __future__ import annotations

import base64
import os
import shutil
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine

from newsletter.cli import run
from newsletter.domain.tokens import Purpose, Signer
from newsletter.infra.db.engine import connect
from newsletter.infra.workspace import Workspace, open_workspace
from newsletter.services.subscribers import SubscriberStore
from newsletter.web.server import build_app

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Sample:
    """A copy of the repository's sample workspace in a temporary folder."""

    root: Path

    def write(self, relative: str, content: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        return path

    def edit(self, relative: str, old: str, new: str) -> int:
        """Replace the first `old` with `new` in a file; return the line where `new` begins."""
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        start = text.index(old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return text.count("\n", 0, start) + 1

    def snippet(self, snippet_id: str, body: str = "Plain body text.", **front: str) -> Path:
        fields = {
            "title": "A test snippet",
            "summary": "What it covers.",
            "tags": "[evidence]",
            "reviewed": "2026-11-01",
            "sources": "\n  - title: The DOI Handbook\n    url: https://doi.org/10.1000/182",
            **front,
        }
        lines = "".join(f"{key}: {value}\n" for key, value in fields.items() if value is not None)
        return self.write(f"issues/snippets/{snippet_id}.md", f"---\n{lines}---\n{body}\n")

    def issue(self, slug: str, snippets: list[str], **front: str) -> Path:
        fields = {
            "subject": "A test issue",
            "preheader": "A short teaser for the inbox.",
            "date": "2026-12-01",
            "status": "ready",
            **front,
        }
        lines = "".join(f"{key}: {value}\n" for key, value in fields.items() if value is not None)
        items = "".join(f"  - {s}\n" for s in snippets)
        return self.write(f"issues/{slug}.md", f"---\n{lines}snippets:\n{items}---\nWelcome.\n")


@pytest.fixture
def sample(tmp_path: Path) -> Sample:
    root = tmp_path / "workspace"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    return Sample(root)


@pytest.fixture
def cli(
    sample: Sample, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Run `newsletter --workspace SAMPLE ARGS...` in-process and capture what it printed."""
    monkeypatch.delenv("NEWSLETTER_WORKSPACE", raising=False)
    monkeypatch.chdir(sample.root)

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(["--workspace", str(sample.root), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


POSTGRES_ADMIN = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN.replace("+psycopg", ""), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database for one test, dropped after it. In CI it must be there."""
    problem = _postgres_problem()
    if problem:
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN}: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"newsletter_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in a temporary folder, or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with connect(database_url) as engine:
        yield engine


@pytest.fixture
def store(engine: Engine) -> SubscriberStore:
    return SubscriberStore(engine)


SECRET = "test-signing-key-0123456789abcdef"


@dataclass
class WebServer:
    url: str
    workspace: Workspace
    engine: Engine
    store: SubscriberStore
    signer: Signer

    def token(self, purpose: Purpose, subscriber_id: int, **kwargs: object) -> str:
        return self.signer.sign(purpose, subscriber_id, **kwargs)  # type: ignore[arg-type]


@contextmanager
def running(app: object) -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn on a free loopback port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # As `serve` runs it: uvicorn must not rewrite the peer from X-Forwarded-For itself.
    config = uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def web(sample: Sample, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebServer]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    workspace = open_workspace(sample.root)
    with connect(database_url) as engine:
        signer = Signer([SECRET])
        with running(build_app(workspace, engine, signer)) as url:
            yield WebServer(url, workspace, engine, SubscriberStore(engine), signer)


@dataclass
class Sending:
    """A workspace with a database of subscribers, ready to send."""

    sample: Sample
    workspace: Workspace
    engine: Engine
    store: SubscriberStore

    @property
    def outbox(self) -> Path:
        return self.workspace.state_dir / "outbox"

    def run(self, transport: str, issue: str = "2026-12-welcome", **options: object):  # type: ignore[no-untyped-def]
        """Start a send of `issue` to the whole list and run it in this process, with the
        transport configured by the environment; returns (ledger, final record)."""
        from newsletter.infra.transports.factory import make_transport
        from newsletter.services.dispatch import Dispatcher, SendOptions
        from newsletter.services.ledger import Ledger
        from newsletter.services.links import list_identity
        from newsletter.services.sending import create_send, plan_send

        workspace = open_workspace(self.sample.root)  # settings as the test has set them
        ledger = Ledger(self.engine)
        plan = plan_send(workspace, self.engine, issue, transport=transport, again=True)
        record = create_send(ledger, plan, again=True)
        settings = {"backoff_base": 0.01, **options}
        dispatcher = Dispatcher(
            ledger,
            make_transport(workspace, transport),
            list_identity(workspace.settings),
            Signer([SECRET]),
            SendOptions(**settings),
        )  # type: ignore[arg-type]
        return ledger, dispatcher.run(record.id)

    def cancel_after_one(self, issue: str = "2026-12-welcome"):  # type: ignore[no-untyped-def]
        """A send of `issue` that reached one reader and was then cancelled (the rest end
        skipped), done through the work queue as a worker and `sends cancel` would."""
        from newsletter.domain.delivery import DeliveryStatus
        from newsletter.services.claims import Verdict, WorkQueue
        from newsletter.services.ledger import Ledger
        from newsletter.services.sending import create_send, plan_send

        ledger, queue = Ledger(self.engine), WorkQueue(self.engine)
        plan = plan_send(self.workspace, self.engine, issue, again=True)
        record = create_send(ledger, plan, again=True)
        batch = queue.claim(record.id, queue.register_worker(record.id), 1)
        queue.checkpoint(batch, [], [c.delivery_id for c in batch.claims])
        queue.record(batch, [Verdict(batch.claims[0].delivery_id, DeliveryStatus.SENT, 1)])
        ledger.cancel(record.id)
        return ledger.get(record.id)

    def add(self, count: int, **kwargs: object) -> list[int]:
        from newsletter.domain.subscriber import Source
        from newsletter.services.subscribers import Context

        start = len(self.store.list(limit=100_000))
        return [
            self.store.add(
                f"reader{start + i}@example.com",
                name=f"Reader{start + i} Test",
                context=Context(Source.CLI),
                **kwargs,
            ).id  # type: ignore[arg-type]
            for i in range(count)
        ]


@pytest.fixture
def sending(
    sample: Sample, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sending]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    workspace = open_workspace(sample.root)
    with connect(database_url) as engine:
        yield Sending(sample, workspace, engine, SubscriberStore(engine))


class EventSigner:
    """Signs Event Webhook posts as SendGrid does, with a key pair of the test's own."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(public).decode()

    def headers(self, body: bytes, at: int | None = None) -> dict[str, str]:
        stamp = str(at or int(time.time()))
        signature = self.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }


def eventually(check: Callable[[], object], timeout: float = 5.0) -> object:
    """Work done after the answer (the subscribe form's): wait for it to show."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
