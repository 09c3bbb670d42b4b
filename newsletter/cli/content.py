"""Content commands: snippets, issues, build, check, preview."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from newsletter.cli.app import (
    JsonFlag,
    app,
    err,
    issues_app,
    new_table,
    open_current_workspace,
    out,
    print_json,
    snippets_app,
)
from newsletter.domain.findings import Severity
from newsletter.errors import ExitStatus

if TYPE_CHECKING:
    from rich.console import Console

    from newsletter.domain.findings import Finding
    from newsletter.services.build import Build
    from newsletter.services.issue_states import IssueState

WIDE = 110  # columns from which `snippets list` is a table

IssueArg = Annotated[
    str, typer.Argument(help="Issue slug (e.g. 2026-12-welcome) or path.", metavar="ISSUE")
]


@snippets_app.command("list", epilog="Example: newsletter snippets list --tag evidence --unused")
def snippets_list(
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Only snippets with this tag.")
    ] = None,
    unused: Annotated[
        bool, typer.Option("--unused", help="Only snippets no send has carried yet.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the snippets in the library, and when each was last sent and to how many."""
    from newsletter.services.reuse import snippet_rows

    workspace = open_current_workspace()
    if workspace.has_database:
        from newsletter.infra.db.engine import connect

        with connect(workspace.database_url) as engine:
            rows = snippet_rows(workspace, engine, tag, unused=unused)
    else:  # no list yet: nothing was ever sent
        rows = snippet_rows(workspace, None, tag, unused=unused)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    if out.width >= WIDE:
        table = new_table(box=None)  # ids are typed back into issue files: never cut
        for column in ("id", "title", "tags", "reviewed", "src", "last sent"):
            table.add_column(
                column, no_wrap=column != "title", ratio=1 if column == "title" else None
            )
        for r in rows:
            meta = r.snippet.meta
            row = (r.snippet.id, Text(meta.title), ", ".join(meta.tags), str(meta.reviewed))
            table.add_row(*row, str(len(meta.sources)), r.last_sent)
        out.print(table)
    else:  # narrow terminals: one block per snippet, nothing cut or broken mid-word
        for r in rows:
            meta = r.snippet.meta
            out.print(Text.assemble((r.snippet.id, "bold"), f"  last sent: {r.last_sent}"))
            out.print(Text(f"  {meta.title}"))
            details = ", ".join(meta.tags) or "no tags"
            out.print(
                Text(f"  {details} · reviewed {meta.reviewed} · {len(meta.sources)} source(s)"),
                style="dim",
            )
    out.print(f"{len(rows)} snippet(s)")


@issues_app.command("list", epilog="Example: newsletter issues list --json")
def issues_list(as_json: JsonFlag = False) -> None:
    """List the issues: file status, checks, and whether each is scheduled or was sent."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.issue_states import issue_states

    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        states = issue_states(workspace, engine)
    if as_json:
        print_json([s.to_dict() for s in states])
        return
    table = new_table(box=None)
    table.add_column("slug", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("file", no_wrap=True)
    table.add_column("checks", no_wrap=True)
    table.add_column("sending", overflow="fold")
    for s in states:
        check = {"ok": "[green]ok[/]", "warnings": "[yellow]warnings[/]"}.get(
            s.check, "[red]errors[/]"
        )
        table.add_row(Text(s.slug), str(s.date), s.status, check, Text(_sending(s)))
    out.print(table)
    out.print(f"{len(states)} issue(s)")


def _sending(s: IssueState) -> str:
    if s.send_id is not None and s.sent_at is not None:
        return f"sent #{s.send_id} {s.sent_at:%Y-%m-%d}: {s.sent} sent, {s.delivered} delivered"
    if s.scheduled_at is not None:
        return f"scheduled {s.scheduled_at:%Y-%m-%d %H:%M} UTC (#{s.schedule_id})"
    return "never sent"


def show_findings(findings: list[Finding], console: Console = out) -> None:
    for f in findings:
        style = "red" if f.severity == Severity.ERROR else "yellow"
        where = f"{f.where}: " if f.where else ""
        console.print(
            f"[{style}]{f.severity}[/{style}] {escape(where + f.message)} [dim]({f.code})[/dim]"
        )
    errors = sum(f.severity == Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    console.print(f"{errors} error(s), {warnings} warning(s)")


def _build_json(build: Build, **extra: Any) -> dict[str, Any]:
    findings = build.findings
    return {
        "issue": build.issue.slug,
        "ok": build.ok,
        "errors": sum(f.severity == Severity.ERROR for f in findings),
        "warnings": sum(f.severity == Severity.WARNING for f in findings),
        "content_hash": build.rendered.content_hash,
        "html_bytes": len(build.probe.html.encode("utf-8")),
        "findings": [f.to_dict() for f in findings],
        **extra,
    }


def _exit_for(build: Build) -> None:
    if not build.ok:
        raise typer.Exit(ExitStatus.CHECKS_FAILED)


@app.command(epilog="Example: newsletter check 2026-12-welcome --online --json")
def check(
    issue: IssueArg,
    online: Annotated[
        bool,
        typer.Option("--online", help="Also fetch every link and source (cached for a day)."),
    ] = False,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic", help="The audience to compare snippet reuse with.", metavar="TOPIC"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the pre-flight checks. Exit 1 if any check is an error."""
    from newsletter.cli.progress import LateProgress
    from newsletter.services.preflight import check_issue

    progress = LateProgress("links", enabled=online and not as_json)
    try:
        build = check_issue(
            open_current_workspace(), issue, online=online, topic=topic, on_progress=progress
        )
    finally:
        progress.stop()
    if as_json:
        print_json(_build_json(build))
    else:
        show_findings(build.findings)
    _exit_for(build)


@app.command(epilog="Example: newsletter build 2026-12-welcome --out /tmp/welcome")
def build(
    issue: IssueArg,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: STATE/build/SLUG).", file_okay=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build index.html, index.txt and issue.mjml, and run the checks (exit 1 on errors)."""
    from newsletter.services.build import Builder, default_out_dir, write_build

    workspace = open_current_workspace()
    result = Builder(workspace).build(issue)
    written = write_build(result, out_dir or default_out_dir(workspace, result.issue.slug))
    if as_json:
        print_json(_build_json(result, files={k: str(v) for k, v in written.items()}))
    else:
        show_findings(result.findings)
        out.print(f"HTML: {written['index.html']}")
        out.print(f"Text: {written['index.txt']}")
    _exit_for(result)


@app.command(epilog="Example: newsletter preview 2026-12-welcome --open")
def preview(
    issue: IssueArg,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Preview file (default: STATE/preview/SLUG.html).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Write a preview page: desktop and 375 px mobile side by side, and the text version."""
    import webbrowser

    from newsletter.services.build import Builder
    from newsletter.services.preview import write_preview

    builder = Builder(open_current_workspace())
    result = builder.build(issue)
    path = write_preview(builder, result, out_file)
    show_findings(result.findings, err)  # stdout carries only the path, for scripts
    out.print(str(path))
    if open_browser:
        webbrowser.open(path.resolve().as_uri())
