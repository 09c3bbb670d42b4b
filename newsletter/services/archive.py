"""The public archive: every issue that went out (or is marked `published`), rendered for
the web without anybody's links, as pages, an index and an Atom feed.

One builder serves both `newsletter archive build` (a static folder, swapped in whole)
and `newsletter serve` (kept in memory, rebuilt when the files or the ledger change). The
images in issues/images/ are published beside the pages (`images/<file>`): the static
folder gets a copy, `serve` answers them from the workspace (web/archive.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy import Engine, func, select

from newsletter import __version__
from newsletter.domain.archive import (
    Entry,
    Site,
    Topic,
    atom_feed,
    email_parts,
    first_release,
    is_public,
    newest_first,
    ordered_topics,
    page_url,
    placeholders_left,
)
from newsletter.domain.issue import Issue, IssueFile, parse_issue
from newsletter.errors import InputError
from newsletter.infra.db.clock import utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import sends
from newsletter.infra.files import display_path
from newsletter.infra.workspace import Workspace
from newsletter.services.composition import images_dir, published_images
from newsletter.services.ledger import reached_readers
from newsletter.services.library import Library
from newsletter.services.render import Renderer

log = logging.getLogger("newsletter.archive")

INDEX_TEMPLATE = "archive/index.html.j2"
PAGE_TEMPLATE = "archive/issue.html.j2"
MARKER = ".newsletter-archive"  # names a folder this command may replace
Progress = Callable[[int, int, str], None]  # (done, total, slug)


@dataclass(frozen=True)
class Problem:
    """An issue left off the archive, and why; `public` when it should have been on it."""

    slug: str
    message: str
    public: bool


@dataclass(frozen=True)
class State:
    """What the output depends on: the workspace's content and template files (by content)
    and, per issue, when it first went out."""

    files: dict[str, bytes]  # images by size and time of change: pages use their size
    releases: dict[str, datetime]
    key: str


@dataclass(frozen=True)
class ArchiveSite:
    key: str
    site: Site
    entries: list[Entry]
    index: bytes
    pages: dict[str, bytes]  # slug -> the page
    feed: bytes
    problems: list[Problem] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)  # name -> file in issues/images/

    def files(self) -> dict[str, bytes]:
        """Relative path -> content of the pages, as the static folder holds them (the
        images are copied from `images`, under `images/`)."""
        out = {"index.html": self.index, "feed.xml": self.feed}
        out.update({f"{slug}/index.html": page for slug, page in self.pages.items()})
        return out


@dataclass(frozen=True)
class _Rendered:
    issue: Issue
    styles: tuple[str, ...]
    body: str
    image: str | None


def _digest(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


class ArchiveService:
    """Builds the archive of one workspace; keeps the public renders of unchanged issues."""

    def __init__(self, workspace: Workspace, engine: Engine) -> None:
        self.workspace = workspace
        self.engine = reading(engine)
        self.library = Library(workspace)
        self.renderer = Renderer(workspace.templates_dir, workspace.settings)
        self._renders: dict[str, _Rendered] = {}
        settings = workspace.settings
        base = settings.base_url.rstrip("/")
        self.site = Site(
            name=settings.name,
            author=settings.from_name,
            base_url=base,
            subscribe_url=f"{base}/subscribe",
        )

    # -- what the output depends on -------------------------------------------------------

    def releases(self) -> dict[str, datetime]:
        """Issue slug -> when its first send started, for sends some reader got (see
        ledger.reached_readers). Test sends are not in the ledger."""
        started = func.min(func.coalesce(sends.c.started_at, sends.c.created_at))
        query = (
            select(sends.c.issue_slug, started)
            .where(reached_readers())
            .group_by(sends.c.issue_slug)
        )
        with self.engine.connect() as connection:
            return {slug: utc(at) for slug, at in connection.execute(query)}  # type: ignore[misc]

    def state(self) -> State:
        root = self.workspace.root
        paths = [
            *self.library.issue_paths(),
            *sorted(self.workspace.snippets_dir.glob("*.md")),
            *sorted(p for p in self.workspace.templates_dir.rglob("*") if p.is_file()),
        ]
        files = {}
        for path in paths:
            try:
                files[str(path.relative_to(root))] = path.read_bytes()
            except OSError:
                continue  # removed while we looked: the next state sees it gone
        for path in published_images(images_dir(self.workspace.issues_dir)).values():
            try:
                seen = path.stat()
            except OSError:
                continue
            files[str(path.relative_to(root))] = f"{seen.st_size}:{seen.st_mtime_ns}".encode()
        releases = self.releases()
        key = _digest(
            *(f"{name}:{_digest(data)}" for name, data in sorted(files.items())),
            *(f"{slug}@{at.isoformat()}" for slug, at in sorted(releases.items())),
        )
        return State(files, releases, key)

    # -- building --------------------------------------------------------------------------

    def build(self, state: State | None = None, on_progress: Progress | None = None) -> ArchiveSite:
        state = state or self.state()
        chosen, problems = self._public_issues(state)
        entries: list[Entry] = []
        pages: dict[str, bytes] = {}
        kept: dict[str, _Rendered] = {}
        templates = _digest(
            *(
                f"{n}:{_digest(d)}"
                for n, d in sorted(state.files.items())
                if n.startswith(("templates/", "issues/images/"))
            )
        )
        for done, issue_file in enumerate(chosen, 1):
            key = self._render_key(issue_file, state, templates)
            try:
                rendered = self._renders.get(key) or self._render(issue_file)
            except InputError as exc:
                problems.append(Problem(issue_file.slug, str(exc), public=True))
                continue
            finally:
                if on_progress:
                    on_progress(done, len(chosen), issue_file.slug)
            kept[key] = rendered
            entry = self._entry(rendered, state.releases.get(issue_file.slug))
            entries.append(entry)
            pages[entry.slug] = self._page(entry, rendered)
        self._renders = kept  # renders of issues gone or changed are dropped
        entries = newest_first(entries)
        index = self.renderer.render_template(
            INDEX_TEMPLATE, {"site": self.site, "entries": entries}
        ).encode()
        feed = atom_feed(self.site, entries, generator=f"newsletter {__version__}")
        images = published_images(images_dir(self.workspace.issues_dir))
        return ArchiveSite(state.key, self.site, entries, index, pages, feed, problems, images)

    def _public_issues(self, state: State) -> tuple[list[IssueFile], list[Problem]]:
        chosen: list[IssueFile] = []
        problems: list[Problem] = []
        seen: set[str] = set()
        for path in self.library.issue_paths():
            name = str(path.relative_to(self.workspace.root))
            if name not in state.files:
                continue
            seen.add(path.stem)
            sent = path.stem in state.releases
            try:
                text = state.files[name].decode("utf-8-sig").replace("\r\n", "\n")
                issue_file = parse_issue(path.stem, text, display_path(path))
            except (InputError, UnicodeDecodeError) as exc:
                # Unreadable: public if it went out, else unknown (a broken draft, maybe).
                problems.append(Problem(path.stem, str(exc), public=sent))
                continue
            if is_public(issue_file.meta.status, sent):
                chosen.append(issue_file)
        for slug in sorted(set(state.releases) - seen):  # removed or renamed after sending
            problems.append(Problem(slug, f"sent, but there is no {slug}.md any more", False))
        return chosen, problems

    def _render_key(self, issue_file: IssueFile, state: State, templates: str) -> str:
        """What an issue's public render depends on: its file, its snippets, the templates
        and the images (whose sizes the pages hold)."""
        folder = self.workspace.snippets_dir.relative_to(self.workspace.root)
        used = [state.files.get(str(folder / f"{sid}.md"), b"") for sid in issue_file.meta.snippets]
        return _digest(issue_file.slug, issue_file.source_text, *used, templates)

    def _render(self, issue_file: IssueFile) -> _Rendered:
        issue = self.library.compose(issue_file.file)
        parts = email_parts(public_html(self.renderer, issue))
        image = next((src for src in parts.images if src.startswith("https://")), None)
        return _Rendered(issue, parts.styles, parts.body, image)

    def _entry(self, rendered: _Rendered, sent_at: datetime | None) -> Entry:
        issue = rendered.issue
        meta = issue.meta
        settings = self.workspace.settings
        tags = [tag for snippet in issue.snippets for tag in snippet.meta.tags]
        topics = ordered_topics(tags, list(settings.topics))
        summary = (meta.preheader or "").strip() or (
            issue.snippets[0].meta.summary.strip() if issue.snippets else ""
        )
        released = first_release(meta.date, sent_at)
        return Entry(
            slug=issue.slug,
            subject=meta.subject.strip(),
            summary=summary,
            day=meta.date,
            published=released,
            updated=released,
            topics=tuple(Topic(tag, settings.topic_label(tag)) for tag in topics),
            url=page_url(self.site.base_url, issue.slug),
            sent=sent_at is not None,
            body=rendered.body,
            image=rendered.image,
        )

    def _page(self, entry: Entry, rendered: _Rendered) -> bytes:
        context: dict[str, Any] = {
            "site": self.site,
            "entry": entry,
            "email_styles": Markup("\n".join(rendered.styles)),
            "email_body": Markup(rendered.body),
        }
        return self.renderer.render_template(PAGE_TEMPLATE, context).encode()


def public_html(renderer: Renderer, issue: Issue) -> str:
    """The issue as the public sees it: the renderer's public mode (greeting fallback, a
    Subscribe link instead of the personal ones). Refused if a placeholder survived."""
    html = renderer.render(issue, public=True).rendered.html
    if placeholders_left(html):
        raise InputError(
            "the public rendering still holds per-reader placeholders", issue.source.file
        )
    return html


class ArchiveCache:
    """The archive for `serve`: built on first request, rebuilt only when the state key
    (file contents, releases) changes, so a request costs a few file reads and one query."""

    def __init__(self, service: ArchiveService) -> None:
        self.service = service
        self._site: ArchiveSite | None = None
        self._lock = threading.Lock()

    def site(self) -> ArchiveSite:
        state = self.service.state()
        with self._lock:
            if self._site is None or self._site.key != state.key:
                self._site = self.service.build(state)
                for problem in self._site.problems:
                    log.warning("archive: %s left out: %s", problem.slug, problem.message)
            return self._site


# -- the static folder ----------------------------------------------------------------------


def default_out_dir(workspace: Workspace) -> Path:
    return workspace.state_dir / "archive"


def write_site(site: ArchiveSite, out_dir: Path) -> dict[str, Path]:
    """Write the whole site into a temporary folder beside `out_dir`, then swap it in: a
    reader sees the old site or the new one, never half of each. Only a folder this
    command wrote (it holds the marker file) or an empty one is ever replaced."""
    out_dir = out_dir.resolve()  # a symlinked folder: replace what it points to
    shown = display_path(out_dir)
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())
    ):
        raise InputError(
            "not an archive folder: it is not empty and was not written by `archive build`; "
            "choose a new or empty folder",
            shown,
        )
    files = site.files()
    images = {f"images/{name}": path for name, path in site.images.items()}
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise InputError(f"cannot write output: {exc.strerror or exc}", shown) from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staged, 0o777 & ~mask)  # mkdtemp makes 0700; a site is for others to read
        for name, content in {**files, MARKER: b"written by newsletter archive build\n"}.items():
            path = staged / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for name, source in images.items():
            (staged / name).parent.mkdir(exist_ok=True)
            shutil.copyfile(source, staged / name)
        _swap_in(staged, out_dir)
    except OSError as exc:
        raise InputError(f"cannot write output: {exc.strerror or exc}", shown) from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return {name: out_dir / name for name in [*files, *images]}


def _swap_in(staged: Path, target: Path) -> None:
    """`staged` becomes `target`; afterwards `staged` holds the old folder, if any.
    On Linux one renameat2(RENAME_EXCHANGE) swaps both at once; elsewhere two renames
    leave a moment in which `target` is missing."""
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.rename(target, aside / "old")
    os.rename(staged, target)
    os.rename(aside, staged)


def _exchange(first: Path, second: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0
