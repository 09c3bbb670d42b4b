"""A self-contained preview page: desktop and 375 px mobile side by side, and the text."""

from __future__ import annotations

from pathlib import Path

from newsletter.infra.files import write_files_atomically
from newsletter.infra.workspace import Workspace
from newsletter.services.build import Build, Builder, sample_recipient

PREVIEW_TEMPLATE = "preview/page.html.j2"


def default_preview_path(workspace: Workspace, slug: str) -> Path:
    return workspace.state_dir / "preview" / f"{slug}.html"


def write_preview(builder: Builder, build: Build, path: Path | None = None) -> Path:
    """Write the page for the sample reader (placeholders filled) and return its path."""
    workspace = builder.workspace
    page = builder.renderer.render_template(
        PREVIEW_TEMPLATE,
        {
            "subject": build.rendered.subject,
            "preheader": build.rendered.preheader,
            "html": build.probe.html,
            "text": build.probe.text,
            "size_kb": f"{len(build.probe.html.encode('utf-8')) / 1024:.1f}",
            "recipient": sample_recipient(workspace).email,
        },
    )
    target = path or default_preview_path(workspace, build.issue.slug)
    write_files_atomically(target.parent, {target.name: page})
    return target
