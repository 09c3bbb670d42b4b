from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from newsletter.cli import run

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
