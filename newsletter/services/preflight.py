"""`newsletter check`: the build's checks, plus what needs more than the files: whether
this audience already got a snippet (the database, when there is one) and, on demand,
whether every link still answers (the network)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from newsletter.domain.findings import ordered
from newsletter.infra.workspace import Workspace
from newsletter.services.build import Build, Builder

if TYPE_CHECKING:  # the link checker is imported only when --online asks for it
    from newsletter.services.linkcheck import Progress


def check_issue(
    workspace: Workspace,
    ref: str,
    *,
    online: bool = False,
    topic: str | None = None,
    on_progress: Progress | None = None,
) -> Build:
    build = Builder(workspace).build(ref)
    findings = list(build.findings)
    if workspace.has_database:  # without one, nobody has been sent anything yet
        from newsletter.infra.db.engine import connect
        from newsletter.services.audience import Audience
        from newsletter.services.reuse import reuse_findings

        with connect(workspace.database_url) as engine:
            findings += reuse_findings(workspace, engine, build.issue, Audience(topic))
    if online:
        from newsletter.services.linkcheck import check_online

        settings = workspace.settings
        findings += check_online(
            build, workspace.state_dir, settings.base_url, on_progress=on_progress
        )
    return replace(build, findings=ordered(findings))
