from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from newsletter.cli import run
from newsletter.infra.db.engine import connect
from newsletter.services.subscribers import SubscriberStore

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
            "tags": "[test]",
            "reviewed": "2026-11-01",
            "sources": "\n  - title: A source\n    url: https://example.org/source",
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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in a temporary folder, or a new PostgreSQL database
    created for the test and dropped after it. In CI PostgreSQL must be there."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
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


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with connect(database_url) as engine:
        yield engine


@pytest.fixture
def store(engine: Engine) -> SubscriberStore:
    return SubscriberStore(engine)
