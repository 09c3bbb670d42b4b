"""The content library of a workspace: snippet and issue files on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newsletter.domain.issue import Issue, IssueFile, compose, parse_issue
from newsletter.domain.snippet import Snippet, parse_snippet
from newsletter.errors import InputError
from newsletter.infra.files import display_path, read_text
from newsletter.infra.workspace import Workspace
from newsletter.services.composition import images_dir, read_local_images


@dataclass
class Library:
    workspace: Workspace

    def snippet_paths(self) -> dict[str, Path]:
        folder = self.workspace.snippets_dir
        if not folder.is_dir():
            raise InputError("snippet folder is missing", display_path(folder))
        return {path.stem: path for path in _markdown_files(folder)}

    def load_snippet(self, path: Path) -> Snippet:
        return parse_snippet(path.stem, read_text(path), display_path(path))

    def snippets(self, tag: str | None = None) -> list[Snippet]:
        loaded = [self.load_snippet(path) for path in self.snippet_paths().values()]
        return [s for s in loaded if tag is None or tag in s.meta.tags]

    def issue_paths(self) -> list[Path]:
        return _markdown_files(self.workspace.issues_dir)

    def issues(self) -> list[IssueFile]:
        return [self.load_issue(str(path)) for path in self.issue_paths()]

    def resolve_issue(self, ref: str) -> Path:
        """ISSUE on the command line is a slug (`2026-12-welcome`) or a path to the file."""
        if not ref.strip():
            raise InputError("no issue given: pass a slug such as 2026-12-welcome, or a path")
        candidate = Path(ref)
        if candidate.suffix == ".md" or candidate.exists() or "/" in ref:
            if not candidate.is_file():
                raise InputError("issue file not found", ref)
            return candidate
        path = self.workspace.issues_dir / f"{ref}.md"
        if not path.is_file():
            known = ", ".join(p.stem for p in self.issue_paths()) or "none"
            raise InputError(
                f"no issue '{ref}' in {display_path(self.workspace.issues_dir)} (known: {known})"
            )
        return path

    def load_issue(self, ref: str) -> IssueFile:
        path = self.resolve_issue(ref)
        return parse_issue(path.stem, read_text(path), display_path(path))

    def compose(self, ref: str) -> Issue:
        """Parse the issue and only the snippets it uses (any snippet id can be suggested),
        and read the local images they show (`services/composition.py`)."""
        issue = self.load_issue(ref)
        paths = self.snippet_paths()
        wanted = {sid: paths[sid] for sid in issue.meta.snippets if sid in paths}
        loaded = {sid: self.load_snippet(path) for sid, path in wanted.items()}
        images = read_local_images(images_dir(self.workspace.issues_dir), loaded.values())
        return compose(issue, loaded, known_ids=paths, images=images)


def _markdown_files(folder: Path) -> list[Path]:
    """`*.md`, without editors' hidden lock and backup files (`.#x.md`, `.x.md.swp`)."""
    return sorted(p for p in folder.glob("*.md") if not p.name.startswith((".", "#", "~")))
