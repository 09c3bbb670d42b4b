"""The workspace: a folder holding newsletter.toml, issues/, templates/ and subscribers/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import InputError
from newsletter.infra.settings import CONFIG_FILE, Settings, load_settings


@dataclass(frozen=True)
class Workspace:
    root: Path
    settings: Settings

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def snippets_dir(self) -> Path:
        return self.root / "issues" / "snippets"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def subscribers_dir(self) -> Path:
        return self.root / "subscribers"

    @property
    def state_dir(self) -> Path:
        state = self.settings.state_dir
        return state if state.is_absolute() else self.root / state

    @property
    def has_database(self) -> bool:
        """A configured database, or the SQLite file the first command that needed one made."""
        return bool(self.settings.database_url) or (self.state_dir / SQLITE_FILE).exists()

    @property
    def database_url(self) -> str:
        return self.settings.database_url or f"sqlite:///{self.state_dir / SQLITE_FILE}"


SQLITE_FILE = "newsletter.db"  # in the state folder, when no database_url is set


def find_root(explicit: Path | None = None, start: Path | None = None) -> Path:
    """`--workspace`, else NEWSLETTER_WORKSPACE, else the nearest folder upwards with the file."""
    chosen = explicit or (
        Path(os.environ["NEWSLETTER_WORKSPACE"]) if os.environ.get("NEWSLETTER_WORKSPACE") else None
    )
    if chosen is not None:
        if not (chosen / CONFIG_FILE).is_file():
            raise InputError(f"no {CONFIG_FILE} in workspace {chosen}")
        return chosen.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise InputError(
        f"no {CONFIG_FILE} found in {here} or any folder above it; "
        "run inside a workspace, pass --workspace DIR or set NEWSLETTER_WORKSPACE"
    )


def open_workspace(explicit: Path | None = None, start: Path | None = None) -> Workspace:
    root = find_root(explicit, start)
    return Workspace(root=root, settings=load_settings(root))
