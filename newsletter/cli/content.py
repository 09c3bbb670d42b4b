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

IssueArg = Annotated[
    str, typer.Argument(help="Issue slug (e.g. 2026-12-welcome) or path.", metavar="ISSUE")
]


@snippets_app.command("list", epilog="Example: newsletter snippets list --tag evidence")
def snippets_list(
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Only snippets with this tag.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the snippets in the library."""
    from newsletter.services.library import Library

    snippets = Library(open_current_workspace()).snippets(tag)
    if as_json:
        print_json(
            [
                {"id": s.id, "file": s.file, **s.meta.model_dump(mode="json", exclude={"id"})}
                for s in snippets
            ]
        )
        return
    # Ids are typed back into issue files: never cut. Title and tags share a column and
    # wrap between words, so the table fits 80 columns without breaking a word.
    table = new_table(box=None)
    table.add_column("id", no_wrap=True)
    table.add_column("title and tags", ratio=1)
    table.add_column("reviewed", no_wrap=True)
    table.add_column("src", justify="right", no_wrap=True)
    for s in snippets:
        cell = Text(s.meta.title)
        if s.meta.tags:
            cell.append("\n" + ", ".join(s.meta.tags), style="dim")
        table.add_row(s.id, cell, str(s.meta.reviewed), str(len(s.meta.sources)))
    out.print(table)
    out.print(f"{len(snippets)} snippet(s)")


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


@app.command(epilog="Example: newsletter check 2026-12-welcome --json")
def check(issue: IssueArg, as_json: JsonFlag = False) -> None:
    """Run the pre-flight checks. Exit 1 if any check is an error."""
    from newsletter.services.build import Builder

    build = Builder(open_current_workspace()).build(issue)
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
