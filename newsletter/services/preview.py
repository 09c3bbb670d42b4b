"""A self-contained preview page: desktop and 375 px mobile side by side, and the text."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter.infra.files import write_files_atomically
from newsletter.infra.workspace import Workspace
from newsletter.services.build import Build, sample_recipient

PREVIEW_TEMPLATE = "preview/page.html.j2"


def default_preview_path(workspace: Workspace, slug: str) -> Path:
    return workspace.state_dir / "preview" / f"{slug}.html"


def render_preview(workspace: Workspace, build: Build) -> str:
    env = Environment(
        loader=FileSystemLoader(str(workspace.templates_dir), encoding="utf-8"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    return env.get_template(PREVIEW_TEMPLATE).render(
        subject=build.rendered.subject,
        preheader=build.rendered.preheader,
        html=build.probe.html,
        text=build.probe.text,
        size_kb=f"{len(build.probe.html.encode('utf-8')) / 1024:.1f}",
        recipient=sample_recipient(workspace).email,
    )


def write_preview(workspace: Workspace, build: Build, path: Path | None = None) -> Path:
    target = path or default_preview_path(workspace, build.issue.slug)
    write_files_atomically(target.parent, {target.name: render_preview(workspace, build)})
    return target
