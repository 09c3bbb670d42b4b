"""Build an issue: compose, render once, run the pre-flight checks (the images' too), write
the output."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from newsletter.domain.checks import CheckLimits, Finding, has_errors, run_checks
from newsletter.domain.findings import ordered
from newsletter.domain.image_checks import check_images
from newsletter.domain.issue import Issue
from newsletter.domain.personalize import (
    PersonalizedMessage,
    Recipient,
    RenderedIssue,
    personalize,
)
from newsletter.domain.theme_checks import SettingsSource, check_theme
from newsletter.infra.files import display_path, read_text, write_files_atomically
from newsletter.infra.settings import CONFIG_FILE
from newsletter.infra.workspace import Workspace
from newsletter.services.library import Library
from newsletter.services.render import Renderer


@dataclass(frozen=True)
class Build:
    issue: Issue
    mjml: str
    rendered: RenderedIssue
    probe: PersonalizedMessage
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not has_errors(self.findings)


def sample_recipient(workspace: Workspace) -> Recipient:
    """The reader a build is checked and previewed for; real links come with real tokens."""
    base = workspace.settings.base_url
    return Recipient(
        email="reader@example.com",
        first_name="Alex",
        unsubscribe_url=f"{base}/u/PREVIEW",
        preferences_url=f"{base}/preferences/PREVIEW",
    )


def check_limits(workspace: Workspace) -> CheckLimits:
    checks = workspace.settings.checks
    return CheckLimits(
        html_max_bytes=checks.html_max_kb * 1024,
        html_warn_bytes=checks.html_warn_kb * 1024,
        subject_max_chars=checks.subject_max_chars,
        review_max_age_days=checks.review_max_age_days,
    )


class Builder:
    """Builds issues of one workspace; keeps the compiled templates between builds."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.library = Library(workspace)
        self.renderer = Renderer(workspace.templates_dir, workspace.settings)

    def build(self, ref: str, today: date | None = None) -> Build:
        issue = self.library.compose(ref)
        rendering = self.renderer.render(issue)
        probe = personalize(rendering.rendered, sample_recipient(self.workspace))
        findings = run_checks(
            issue,
            rendering.rendered,
            probe,
            postal_address=self.workspace.settings.postal_address,
            today=today or date.today(),
            limits=check_limits(self.workspace),
            template_files=self.renderer.template_sources(),
            base_url=self.workspace.settings.base_url,
            topics=list(self.workspace.settings.topics),
            theme=theme_findings(self.workspace),
        )
        images = check_images(issue, max_bytes=self.workspace.settings.checks.image_max_kb * 1024)
        return Build(issue, rendering.mjml, rendering.rendered, probe, ordered(findings, images))


def theme_findings(workspace: Workspace) -> list[Finding]:
    """The [theme]'s contrast, logo and footer line, pointing at newsletter.toml's lines."""
    config = workspace.root / CONFIG_FILE
    images = workspace.issues_dir / "images"
    return check_theme(
        workspace.settings.theme,
        source=SettingsSource(display_path(config), read_text(config), os.environ),
        image_exists=lambda path: (images / path).is_file(),
        base_url=workspace.settings.base_url,
    )


def default_out_dir(workspace: Workspace, slug: str) -> Path:
    return workspace.state_dir / "build" / slug


def write_build(build: Build, out_dir: Path) -> dict[str, Path]:
    """index.html and index.txt hold the placeholders a send fills in; issue.mjml the source."""
    files = {
        "index.html": build.rendered.html,
        "index.txt": build.rendered.text,
        "issue.mjml": build.mjml,
    }
    write_files_atomically(out_dir, files)
    return {name: out_dir / name for name in files}
